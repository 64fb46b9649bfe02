;; initerror.wat: refuses to start with an error of its own.
(module
  (memory (export "memory") 1)
  ;; InitAnswer{Error: `config key "threshold" is required`}
  (data (i32.const 16) "\01\22config key \"threshold\" is required")
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_buffer") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wasmilter_init") (param $len i32) (result i64)
    (i64.const 0x1000000024)) ;; ptr 16, len 36
  (func (export "wasmilter_on_connect") (param $len i32) (result i64) (i64.const 0))
)
