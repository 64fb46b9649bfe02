;; hostile.wat: a different misbehaviour per hook.
;;   connect: traps (unreachable)
;;   helo:    calls log with a pointer outside its memory
;;   mail:    answers with a pointer/length outside its memory
;;   rcpt:    calls macro with an output buffer outside its memory
;;   headers: exits through WASI proc_exit(3)
;;   message: answers continue (the plugin still works after all of the above)
(module
  (import "wasmilter" "log" (func $log (param i32 i32 i32)))
  (import "wasmilter" "macro" (func $macro (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  ;; A fixed exchange buffer at page 1: these guests only see small events.
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  (data (i32.const 16) "i")
  (func (export "wasmilter_on_connect") (param $len i32) (result i64) (unreachable))
  (func (export "wasmilter_on_helo") (param $len i32) (result i64)
    (call $log (i32.const 1) (i32.const 0x7fff0000) (i32.const 100))
    (i64.const 0))
  (func (export "wasmilter_on_mail") (param $len i32) (result i64)
    (i64.const 0xffff000000000010))
  (func (export "wasmilter_on_rcpt") (param $len i32) (result i64)
    (drop (call $macro (i32.const 16) (i32.const 1) (i32.const 0x7fff0000) (i32.const 64)))
    (i64.const 0))
  (func (export "wasmilter_on_headers") (param $len i32) (result i64)
    (call $proc_exit (i32.const 3))
    (i64.const 0))
  (func (export "wasmilter_on_message") (param $len i32) (result i64) (i64.const 0))
)
