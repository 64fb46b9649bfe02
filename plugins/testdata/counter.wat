;; counter.wat: at the message hook, logs "counted" and adds 1 to the key
;; "n" of its key/value namespace. Two plugins loaded from these bytes
;; share one runtime; each must still count in its own namespace and log
;; under its own name.
(module
  (import "wasmilter" "log" (func $log (param i32 i32 i32)))
  (import "wasmilter" "kv_incr" (func $kv_incr (param i32 i32 i64 i64 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "counted")
  (data (i32.const 32) "n")
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_message") (param $len i32) (result i64)
    (call $log (i32.const 1) (i32.const 16) (i32.const 7))
    (drop (call $kv_incr (i32.const 32) (i32.const 1) (i64.const 1) (i64.const 0) (i32.const 48)))
    (i64.const 0))
)
