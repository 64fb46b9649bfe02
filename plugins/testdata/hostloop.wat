;; hostloop.wat: spins forever inside host calls, so the deadline has to stop
;; a guest that is mostly in the host, not just one looping on its own.
;;   connect: answers continue (the plugin works when it is not asked to spin)
;;   headers: calls log forever (the host's per-call line budget runs out
;;            after 64 lines; the loop does not)
;;   message: calls kv_incr forever
(module
  (import "wasmilter" "log" (func $log (param i32 i32 i32)))
  (import "wasmilter" "kv_incr" (func $kv_incr (param i32 i32 i64 i64 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "spinning")
  (data (i32.const 32) "counter")
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  ;; A fixed exchange buffer at page 1: these guests only see small events.
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_connect") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_headers") (param $len i32) (result i64)
    (loop $forever
      (call $log (i32.const 1) (i32.const 16) (i32.const 8))
      (br $forever))
    (i64.const 0))
  (func (export "wasmilter_on_message") (param $len i32) (result i64)
    (loop $forever
      (drop (call $kv_incr (i32.const 32) (i32.const 7) (i64.const 1) (i64.const 0) (i32.const 48)))
      (br $forever))
    (i64.const 0))
)
