;; recurse.wat: message recurses without end until the call stack overflows;
;; connect answers continue.
(module
  (memory (export "memory") 2)
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  ;; A fixed exchange buffer at page 1: these guests only see small events.
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_connect") (param $len i32) (result i64) (i64.const 0))
  (func $deeper (param $n i64) (result i64)
    (i64.add (call $deeper (i64.add (local.get $n) (i64.const 1))) (local.get $n)))
  (func (export "wasmilter_on_message") (param $len i32) (result i64)
    (drop (call $deeper (i64.const 0)))
    (i64.const 0))
)
