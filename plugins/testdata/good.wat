;; good.wat: a well-behaved plugin.
;; - init narrows its hooks to connect, headers and message (helo is exported
;;   but not handled), so the host must not call helo.
;; - headers: walks the event's fields; when a header "X-Policy: tempfail" is
;;   present it answers tempfail with reply 451 4.7.1, otherwise continue.
;; - message: adds the header "X-Good: yes".
(module
  (memory (export "memory") 2)
  (global $buf i32 (i32.const 65536)) ;; the exchange buffer lives from page 1 on
  (global $pos (mut i32) (i32.const 0))

  ;; InitAnswer{Hooks: connect|headers|message}: tag 3, len 1, 0x31
  (data (i32.const 16) "\03\01\31")
  (data (i32.const 32) "X-Policy")
  (data (i32.const 48) "tempfail")
  ;; Answer{TempFail, Reply{451, "4.7.1", "Greylisted by policy, retry later"}}
  (data (i32.const 64) "\01\01\03" "\02\02\c3\03" "\03\054.7.1" "\04\21Greylisted by policy, retry later")
  ;; Answer{Actions: [AddHeader "X-Good" "yes"]}
  (data (i32.const 128) "\05\0e\01\00\06X-Good\03yes\00")

  (func $ret (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))

  ;; wasmilter_buffer grows memory until the buffer at page 1 holds size bytes.
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (local $need i32)
    (local.set $need
      (i32.sub
        (i32.shr_u (i32.add (i32.add (global.get $buf) (local.get $size)) (i32.const 65535)) (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
        (then (return (i32.const 0))))))
    (global.get $buf))

  (func (export "wasmilter_init") (param $len i32) (result i64)
    (call $ret (i32.const 16) (i32.const 3)))

  (func (export "wasmilter_on_connect") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_helo") (param $len i32) (result i64) (unreachable))

  ;; read_uvarint decodes the uvarint at $pos and advances $pos past it.
  (func $read_uvarint (result i32)
    (local $result i32) (local $shift i32) (local $b i32)
    (loop $more
      (local.set $b (i32.load8_u (global.get $pos)))
      (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
      (local.set $result
        (i32.or (local.get $result)
                (i32.shl (i32.and (local.get $b) (i32.const 0x7f)) (local.get $shift))))
      (local.set $shift (i32.add (local.get $shift) (i32.const 7)))
      (br_if $more (i32.and (local.get $b) (i32.const 0x80))))
    (local.get $result))

  ;; eq compares two byte ranges.
  (func $eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
    (block $differ
      (loop $next
        (if (i32.eq (local.get $i) (local.get $alen)) (then (return (i32.const 1))))
        (br_if $differ
          (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; headers: field = tag, uvarint length, payload; a header (tag 12) payload
  ;; is a uvarint name length, the name, then the value up to the field end.
  (func (export "wasmilter_on_headers") (param $len i32) (result i64)
    (local $end i32) (local $tag i32) (local $fend i32) (local $nlen i32) (local $val i32)
    (global.set $pos (global.get $buf))
    (local.set $end (i32.add (global.get $buf) (local.get $len)))
    (block $done
      (loop $fields
        (br_if $done (i32.ge_u (global.get $pos) (local.get $end)))
        (local.set $tag (i32.load8_u (global.get $pos)))
        (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
        (local.set $fend (call $read_uvarint))
        (local.set $fend (i32.add (global.get $pos) (local.get $fend)))
        (if (i32.eq (local.get $tag) (i32.const 12))
          (then
            (local.set $nlen (call $read_uvarint))
            (local.set $val (i32.add (global.get $pos) (local.get $nlen)))
            (if (i32.and
                  (call $eq (global.get $pos) (local.get $nlen) (i32.const 32) (i32.const 8))
                  (call $eq (local.get $val) (i32.sub (local.get $fend) (local.get $val)) (i32.const 48) (i32.const 8)))
              (then (return (call $ret (i32.const 64) (i32.const 49)))))))
        (global.set $pos (local.get $fend))
        (br $fields)))
    (i64.const 0))

  (func (export "wasmilter_on_message") (param $len i32) (result i64)
    (call $ret (i32.const 128) (i32.const 16)))
)
