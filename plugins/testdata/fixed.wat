;; fixed.wat: a template. Tests replace __ANSWER__ with the WAT string
;; escapes of an answer encoded by abi.AppendAnswer and __ANSWER_LEN__ with
;; its length; every hook then returns that answer. Chain tests build plugins
;; with whatever verdicts and actions they need from it.
(module
  (memory (export "memory") 2)
  (data (i32.const 1024) "__ANSWER__")
  (func $answer (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const __ANSWER_LEN__)))
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_connect") (param $len i32) (result i64) (call $answer))
  (func (export "wasmilter_on_helo") (param $len i32) (result i64) (call $answer))
  (func (export "wasmilter_on_mail") (param $len i32) (result i64) (call $answer))
  (func (export "wasmilter_on_rcpt") (param $len i32) (result i64) (call $answer))
  (func (export "wasmilter_on_headers") (param $len i32) (result i64) (call $answer))
  (func (export "wasmilter_on_message") (param $len i32) (result i64) (call $answer))
  (func (export "wasmilter_on_delay") (param $len i32) (result i64) (call $answer))
)
