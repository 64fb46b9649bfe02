;; answer.wat: a template for guests that answer the message hook with an
;; arbitrary (usually invalid) encoded answer, however big; connect answers
;; continue. Tests replace
;;   __PAGES__      the initial memory in 64 KiB pages
;;   __ANSWER__     WAT string escapes of the answer's first bytes, placed at
;;                  131072 (page 2, past the exchange buffer at page 1)
;;   __FILL_AT__    where a run of 'x' continues the answer (memory.fill at
;;                  every call, so the answer needs no multi-megabyte text)
;;   __FILL_LEN__   the run's length (0 for none)
;;   __TOTAL__      the answer's whole length; bytes after the fill are the
;;                  memory's zeroes
(module
  (memory (export "memory") __PAGES__)
  (data (i32.const 131072) "__ANSWER__")
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_connect") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_message") (param $len i32) (result i64)
    (memory.fill (i32.const __FILL_AT__) (i32.const 120) (i32.const __FILL_LEN__))
    (i64.or (i64.shl (i64.const 131072) (i64.const 32)) (i64.const __TOTAL__)))
)
