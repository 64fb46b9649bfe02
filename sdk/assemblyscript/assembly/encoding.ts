// The field encoding of sdk/ABI.md §3: fields of "tag byte, uvarint length,
// payload", uvarints as unsigned LEB128, strings as raw bytes (UTF-8 here).

// Reader decodes fields from guest memory. Every method checks bounds and
// reports a malformed encoding through `ok` instead of reading past the end.
export class Reader {
  ok: bool = true;

  constructor(public ptr: usize, public end: usize) {}

  get done(): bool {
    return !this.ok || this.ptr >= this.end;
  }

  get remaining(): i32 {
    return <i32>(this.end - this.ptr);
  }

  uvarint(): u64 {
    let v: u64 = 0;
    for (let i = 0; i < 10 && this.ptr + <usize>i < this.end; i++) {
      const c = load<u8>(this.ptr + <usize>i);
      if (i == 9 && c > 1) break; // more than 64 bits
      v |= (<u64>(c & 0x7f)) << (<u64>(7 * i));
      if (c < 0x80) {
        this.ptr += <usize>(i + 1);
        return v;
      }
    }
    this.ok = false;
    return 0;
  }

  // bytes reads a length-prefixed byte string and returns it as a Reader.
  bytes(): Reader {
    const n = this.uvarint();
    if (!this.ok || n > <u64>(this.end - this.ptr)) {
      this.ok = false;
      return new Reader(0, 0);
    }
    const out = new Reader(this.ptr, this.ptr + <usize>n);
    this.ptr += <usize>n;
    return out;
  }

  // field reads one tagged field; its payload is left in `payload`.
  field(): u8 {
    if (this.ptr >= this.end) {
      this.ok = false;
      return 0;
    }
    const tag = load<u8>(this.ptr);
    this.ptr++;
    this.payload = this.bytes();
    return tag;
  }

  payload: Reader | null = null;

  // int reads a payload that is exactly one uvarint.
  int(): u64 {
    const v = this.uvarint();
    if (this.ptr != this.end) this.ok = false;
    return v;
  }

  // rest returns the bytes up to the end as a string.
  rest(): string {
    const s = String.UTF8.decodeUnsafe(this.ptr, this.end - this.ptr);
    this.ptr = this.end;
    return s;
  }

  // str reads a length-prefixed string.
  str(): string {
    return this.bytes().rest();
  }

  // strList reads "uvarint n, n × str".
  strList(): string[] {
    const n = this.uvarint();
    const out = new Array<string>();
    if (n > <u64>(this.end - this.ptr)) {
      // each string takes at least one byte
      this.ok = false;
      return out;
    }
    for (let i: u64 = 0; i < n && this.ok; i++) out.push(this.str());
    return out;
  }
}

export function uvarintLen(v: u64): i32 {
  let n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

// Writer builds an encoding in a growable buffer that stays alive (it is
// referenced from a global) until the host has read it.
export class Writer {
  buf: Uint8Array = new Uint8Array(1024);
  len: i32 = 0;

  reset(): void {
    this.len = 0;
  }

  get ptr(): usize {
    return this.buf.dataStart;
  }

  reserve(n: i32): void {
    if (this.buf.length - this.len >= n) return;
    let cap = this.buf.length * 2;
    while (cap - this.len < n) cap *= 2;
    const grown = new Uint8Array(cap);
    memory.copy(grown.dataStart, this.buf.dataStart, <usize>this.len);
    this.buf = grown;
  }

  byte(b: u8): void {
    this.reserve(1);
    store<u8>(this.buf.dataStart + <usize>this.len, b);
    this.len++;
  }

  uvarint(v: u64): void {
    while (v >= 0x80) {
      this.byte(<u8>(v | 0x80));
      v >>= 7;
    }
    this.byte(<u8>v);
  }

  raw(ptr: usize, n: i32): void {
    this.reserve(n);
    memory.copy(this.buf.dataStart + <usize>this.len, ptr, <usize>n);
    this.len += n;
  }

  // str writes a "str": uvarint length, bytes.
  str(b: ArrayBuffer): void {
    this.uvarint(<u64>b.byteLength);
    this.raw(changetype<usize>(b), b.byteLength);
  }

  uintField(tag: u8, v: u64): void {
    this.byte(tag);
    this.uvarint(<u64>uvarintLen(v));
    this.uvarint(v);
  }

  // stringField writes a string field, or nothing for "" (§3).
  stringField(tag: u8, s: string): void {
    if (s.length == 0) return;
    this.byte(tag);
    this.str(String.UTF8.encode(s));
  }

  // packed returns ptr<<32|len, or 0 for an empty encoding.
  packed(): i64 {
    if (this.len == 0) return 0;
    return (<i64>this.ptr << 32) | <i64>this.len;
  }
}

export function strLen(b: ArrayBuffer): i32 {
  return uvarintLen(<u64>b.byteLength) + b.byteLength;
}
