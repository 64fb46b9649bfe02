;; badsig.wat: its headers hook returns i32 instead of i64.
(module
  (memory (export "memory") 1)
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_buffer") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_headers") (param $len i32) (result i32) (i32.const 0))
)
