;; crlf.wat: message adds a header whose value carries CR LF, an attempt to
;; inject a second header. The host must refuse the whole answer.
(module
  (memory (export "memory") 2)
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  ;; A fixed exchange buffer at page 1: these guests only see small events.
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  ;; Answer{Actions: [AddHeader "X-Bad" "a\r\nInjected: yes"]}
  (data (i32.const 16) "\05\1a\01\00\05X-Bad\10a\0d\0aInjected: yes\00")
  (func (export "wasmilter_on_message") (param $len i32) (result i64)
    (i64.const 0x100000001c)) ;; ptr 16, len 28
)
