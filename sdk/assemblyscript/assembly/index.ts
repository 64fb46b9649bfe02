// wasmilter-sdk: the AssemblyScript SDK for wasmilter plugins (plugin ABI v1,
// sdk/ABI.md). A plugin's entry file registers its handlers and re-exports
// the ABI functions:
//
//   import { Config, Message, Plugin, Verdict, register } from "wasmilter-sdk/assembly";
//   export * from "wasmilter-sdk/assembly/exports";
//
//   function onHeaders(m: Message): Verdict {
//     const subject = m.header("Subject");
//     if (subject != null && subject.includes("lottery")) {
//       return Verdict.reject(550, "5.7.1", "We do not take part in lotteries");
//     }
//     m.addHeader("X-Checked-By", "nolottery");
//     return Verdict.continue();
//   }
//
//   const plugin = new Plugin();
//   plugin.headers = onHeaders;
//   register(plugin);
//
// Build with `asc assembly/index.ts --exportStart _initialize
// --use abort=~lib/wasmilter-sdk/assembly/index/abort` (examples/assemblyscript
// has an asconfig.json with these options).
//
// The SDK exports every hook and reports in its init answer which ones have
// a handler, so the host asks the MTA only for those stages. Strings are
// UTF-8 on the wire: bytes that are not UTF-8 (rare in headers, but allowed)
// do not survive a round trip through an AssemblyScript string.
//
// State: the host runs a pool of instances and may replace any of them at
// any time; two hooks of one message may reach different instances. Globals
// are fine for configuration set in init, never for per-message state.
//
// Failures: a malformed event, or an abort (a failed assert, an index out of
// range), logs an error through the host and traps; the host then applies the
// plugin's on_error policy. The SDK never invents a verdict.

import { Reader, Writer, strLen, uvarintLen } from "./encoding";

// ---- host functions (module "wasmilter", §6) ----

@external("wasmilter", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): void;
@external("wasmilter", "now")
declare function hostNow(): i64;
@external("wasmilter", "macro")
declare function hostMacro(namePtr: usize, nameLen: i32, outPtr: usize, outCap: i32): i32;
@external("wasmilter", "stamp")
declare function hostStamp(outPtr: usize, outCap: i32): i32;
@external("wasmilter", "record")
declare function hostRecord(outPtr: usize, outCap: i32): i32;
@external("wasmilter", "properties")
declare function hostProperties(outPtr: usize, outCap: i32): i32;
@external("wasmilter", "kv_get")
declare function hostKVGet(keyPtr: usize, keyLen: i32, outPtr: usize, outCap: i32): i32;
@external("wasmilter", "kv_set")
declare function hostKVSet(keyPtr: usize, keyLen: i32, valPtr: usize, valLen: i32, ttlMs: i64): i32;
@external("wasmilter", "kv_incr")
declare function hostKVIncr(keyPtr: usize, keyLen: i32, delta: i64, ttlMs: i64, outPtr: usize): i32;

// ---- hooks, verdicts, log levels ----

export enum Hook {
  Connect = 0,
  Helo = 1,
  Mail = 2,
  Rcpt = 3,
  Headers = 4,
  Message = 5,
  Delay = 6,
}

export enum LogLevel {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
}

export enum VerdictKind {
  Continue = 0,
  Accept = 1,
  Reject = 2,
  TempFail = 3,
  Discard = 4,
}

// Verdict is what a handler returns. A zero code (with empty enhanced code
// and text) lets the MTA use its default reply.
export class Verdict {
  constructor(
    public kind: VerdictKind,
    public code: i32 = 0,
    public enhanced: string = "",
    public text: string = "",
  ) {}

  // continue: no objection; later plugins run.
  static continue(): Verdict {
    return new Verdict(VerdictKind.Continue);
  }
  // accept: accept the message; no later plugin is asked.
  static accept(): Verdict {
    return new Verdict(VerdictKind.Accept);
  }
  // discard: accept and silently drop the message.
  static discard(): Verdict {
    return new Verdict(VerdictKind.Discard);
  }
  // reject: refuse permanently; code 5xx, enhanced "5.x.y" or "".
  static reject(code: i32, enhanced: string, text: string): Verdict {
    return new Verdict(VerdictKind.Reject, code, enhanced, text);
  }
  // tempfail: refuse temporarily; code 4xx, enhanced "4.x.y" or "".
  static tempfail(code: i32, enhanced: string, text: string): Verdict {
    return new Verdict(VerdictKind.TempFail, code, enhanced, text);
  }
}

// ---- what a handler sees ----

export class Header {
  constructor(public name: string, public value: string) {}
}

export class Recipient {
  constructor(public addr: string, public args: string[]) {}
}

// Stamp is the message's stamp as the host minted or found it (§3).
export class Stamp {
  id: string = "";
  firstSeen: i64 = 0; // Unix seconds
  headerName: string = "";
  headerValue: string = "";
  state: i32 = 0; // 0 new, 1 carried (do not stamp again), 2 forged
  invalid: i32[] = []; // 1-based occurrences of invalid stamp headers
}

// LedgerRecord is the message's retry-ledger record (§3).
export class LedgerRecord {
  id: string = "";
  firstSeen: i64 = 0; // Unix seconds
  lastSeen: i64 = 0;
  attempts: i64 = 0; // attempts before this one
  state: string = ""; // "deferred", "released", "passed", "expired", "held"
  code: i32 = 0; // what the last deferral answered
  enhanced: string = "";
  text: string = "";
  notices: i64 = 0; // delay-policy steps done
  lastNotice: i64 = 0; // Unix seconds, 0 when none was sent
}

// Properties are the header properties the host parsed once (§3).
export class Properties {
  messageId: string = "";
  from: string = "";
  fromName: string = "";
  sender: string = "";
  toCount: i64 = 0;
  ccCount: i64 = 0;
  date: i64 = 0; // Unix seconds, 0 when missing or unparsable
  subject: string = "";
  contentType: string = "";
  receivedCount: i64 = 0;
  listId: string = "";
  autoSubmitted: string = "";
  precedence: string = "";
  isDeliveryReport: bool = false;
  headerCount: i64 = 0;
  headerBytes: i64 = 0;
  problems: string[] = [];
}

// Action kinds of the answer (§3).
const ADD_HEADER: u8 = 1;
const INSERT_HEADER: u8 = 2;
const CHANGE_HEADER: u8 = 3;
const DELETE_HEADER: u8 = 4;
const QUARANTINE: u8 = 5;
const CHANGE_FROM: u8 = 6;
const ADD_RCPT: u8 = 7;
const DEL_RCPT: u8 = 8;
const NOTIFY: u8 = 9;
const EXPIRE: u8 = 10;
const TAG_ACTION: u8 = 5;

// answer holds the encoding of the current call's answer: actions are
// written as they are queued, the verdict's fields after the handler
// returns (field order is free, §3). It lives until the host has read it.
export const answer = new Writer();

// Message is what a handler sees: everything known about the connection
// and the message so far. Valid during the call only.
export class Message {
  hook: Hook = Hook.Connect;
  now: i64 = 0; // host clock, Unix nanoseconds: decide by this
  clientHost: string = ""; // reverse DNS name as the MTA reports it, or "[ip]"
  clientAddr: string = ""; // IP address, or socket path for a local client
  clientPort: i32 = 0;
  family: string = ""; // "inet", "inet6", "unix" or "unknown"
  helo: string = "";
  queueId: string = "";
  from: string = ""; // envelope sender without <>; "" is also the null sender
  fromArgs: string[] = [];
  rcpts: Recipient[] = []; // at the rcpt hook the last one is the current one
  headers: Header[] = []; // empty before the headers hook

  // header returns the value of the first header called name
  // (case-insensitive), or null.
  header(name: string): string | null {
    return this.headerNth(name, 1);
  }

  // headerNth returns the n-th (1-based) header called name, or null; n is
  // the occurrence changeHeader and deleteHeader take.
  headerNth(name: string, n: i32): string | null {
    const want = name.toLowerCase();
    for (let i = 0; i < this.headers.length; i++) {
      if (this.headers[i].name.toLowerCase() == want && --n == 0) return this.headers[i].value;
    }
    return null;
  }

  // headerCount returns how many headers are called name.
  headerCount(name: string): i32 {
    const want = name.toLowerCase();
    let n = 0;
    for (let i = 0; i < this.headers.length; i++) {
      if (this.headers[i].name.toLowerCase() == want) n++;
    }
    return n;
  }

  // currentRcpt returns the recipient decided about at the rcpt hook.
  currentRcpt(): Recipient | null {
    return this.rcpts.length > 0 ? this.rcpts[this.rcpts.length - 1] : null;
  }

  // macro returns an MTA macro ("i", "j", "{auth_authen}"), or null.
  macro(name: string): string | null {
    const key = String.UTF8.encode(name);
    const b = fetch(FETCH_MACRO, key);
    return b == null ? null : String.UTF8.decode(b);
  }

  stamp(): Stamp | null {
    const b = fetch(FETCH_STAMP, null);
    return b == null ? null : decodeStamp(b);
  }

  record(): LedgerRecord | null {
    const b = fetch(FETCH_RECORD, null);
    return b == null ? null : decodeRecord(b);
  }

  properties(): Properties | null {
    const b = fetch(FETCH_PROPERTIES, null);
    return b == null ? null : decodeProperties(b);
  }

  log(level: LogLevel, text: string): void {
    log(level, text);
  }

  addHeader(name: string, value: string): void {
    queueAction(ADD_HEADER, 0, name, value, []);
  }
  // insertHeader inserts at index (0 = first field).
  insertHeader(index: i32, name: string, value: string): void {
    queueAction(INSERT_HEADER, index, name, value, []);
  }
  // changeHeader replaces the occurrence-th (1-based) field called name.
  changeHeader(name: string, occurrence: i32, value: string): void {
    queueAction(CHANGE_HEADER, occurrence, name, value, []);
  }
  deleteHeader(name: string, occurrence: i32): void {
    queueAction(DELETE_HEADER, occurrence, name, "", []);
  }
  quarantine(reason: string): void {
    queueAction(QUARANTINE, 0, "", reason, []);
  }
  changeFrom(addr: string, args: string[] = []): void {
    queueAction(CHANGE_FROM, 0, "", addr, args);
  }
  addRcpt(addr: string, args: string[] = []): void {
    queueAction(ADD_RCPT, 0, "", addr, args);
  }
  delRcpt(addr: string): void {
    queueAction(DEL_RCPT, 0, "", addr, []);
  }
  // notify (delay hook only) asks for a delay notice with text.
  notify(text: string): void {
    queueAction(NOTIFY, 0, "", text, []);
  }
  // expire (delay hook only) gives up; text, if any, is the failed notice.
  expire(text: string): void {
    queueAction(EXPIRE, 0, "", text, []);
  }
}

function queueAction(kind: u8, index: i32, name: string, value: string, args: string[]): void {
  const n = String.UTF8.encode(name);
  const v = String.UTF8.encode(value);
  const encodedArgs = new Array<ArrayBuffer>();
  let size = 1 + uvarintLen(<u64>index) + strLen(n) + strLen(v) + uvarintLen(<u64>args.length);
  for (let i = 0; i < args.length; i++) {
    const a = String.UTF8.encode(args[i]);
    encodedArgs.push(a);
    size += strLen(a);
  }
  answer.byte(TAG_ACTION);
  answer.uvarint(<u64>size);
  answer.byte(kind);
  answer.uvarint(<u64>index);
  answer.str(n);
  answer.str(v);
  answer.uvarint(<u64>args.length);
  for (let i = 0; i < encodedArgs.length; i++) answer.str(encodedArgs[i]);
}

// ---- the plugin ----

export type Handler = (m: Message) => Verdict;

// Plugin is what a plugin registers. init returns null to start, or the
// reason it refuses to. Hooks left null are not asked for.
export class Plugin {
  init: ((cfg: Config) => string | null) | null = null;
  connect: Handler | null = null;
  helo: Handler | null = null;
  mail: Handler | null = null;
  rcpt: Handler | null = null;
  headers: Handler | null = null;
  message: Handler | null = null;
  delay: Handler | null = null;
}

export let registered: Plugin | null = null;
export let registerError: string = "";

// register registers the plugin; call it once, at the top level of the
// entry file. A second call makes the plugin refuse to start.
export function register(p: Plugin): void {
  if (registered != null) {
    registerError = "register called more than once; register one Plugin with all its handlers";
    return;
  }
  registered = p;
}

// ---- config ----

// ConfigEntry is one key of the config and its values (the SDK decodes them).
export class ConfigEntry {
  read: bool = false;
  constructor(public key: string, public values: string[]) {}
}

// Config is the plugin's [plugins.config] table, flattened to dotted keys,
// every value text. The getters take a default for an absent key; a value
// that does not parse is recorded, and after init the SDK refuses to start
// the plugin with every such problem listed.
export class Config {
  entries: ConfigEntry[] = [];
  errors: string[] = [];

  has(key: string): bool {
    return this.lookup(key) != null;
  }

  // list returns every value of key (a scalar gives one), or null.
  list(key: string): string[] | null {
    const e = this.lookup(key);
    return e == null ? null : e.values;
  }

  getString(key: string, def: string): string {
    const v = this.single(key);
    return v == null ? def : v;
  }

  getInt(key: string, def: i64): i64 {
    const v = this.single(key);
    if (v == null) return def;
    if (!isInteger(v)) {
      this.fail(key, `"${v}" is not an integer`);
      return def;
    }
    return I64.parseInt(v);
  }

  getBool(key: string, def: bool): bool {
    const v = this.single(key);
    if (v == null) return def;
    if (v == "true") return true;
    if (v == "false") return false;
    this.fail(key, `"${v}" is not true or false`);
    return def;
  }

  // unread returns the keys no getter asked for: usually typos.
  unread(): string[] {
    const out = new Array<string>();
    for (let i = 0; i < this.entries.length; i++) {
      if (!this.entries[i].read) out.push(this.entries[i].key);
    }
    return out;
  }

  // lookup finds key; a key given twice keeps its last value.
  private lookup(key: string): ConfigEntry | null {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i];
      if (e.key == key) {
        e.read = true;
        return e;
      }
    }
    return null;
  }

  private single(key: string): string | null {
    const e = this.lookup(key);
    if (e == null) return null;
    if (e.values.length != 1) {
      this.fail(key, `want a single value, got a list of ${e.values.length}`);
      return null;
    }
    return e.values[0];
  }

  private fail(key: string, what: string): void {
    this.errors.push(`config key "${key}": ${what}`);
  }
}

function isInteger(s: string): bool {
  const start = s.startsWith("-") ? 1 : 0;
  if (s.length == start || s.length > 20) return false;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

// ---- host functions ----

// log writes a line to the server log, attributed to the plugin.
export function log(level: LogLevel, text: string): void {
  const b = String.UTF8.encode(text);
  hostLog(<i32>level, changetype<usize>(b), b.byteLength);
}

// now returns the host clock in Unix nanoseconds; in a handler prefer m.now.
export function now(): i64 {
  return hostNow();
}

const FETCH_MACRO = 0;
const FETCH_STAMP = 1;
const FETCH_RECORD = 2;
const FETCH_PROPERTIES = 3;
const FETCH_KV = 4;

function callFetcher(which: i32, key: ArrayBuffer | null, out: ArrayBuffer): i32 {
  const k: usize = key == null ? 0 : changetype<usize>(key);
  const kl: i32 = key == null ? 0 : key.byteLength;
  const o = changetype<usize>(out);
  const cap = out.byteLength;
  switch (which) {
    case FETCH_MACRO:
      return hostMacro(k, kl, o, cap);
    case FETCH_STAMP:
      return hostStamp(o, cap);
    case FETCH_RECORD:
      return hostRecord(o, cap);
    case FETCH_PROPERTIES:
      return hostProperties(o, cap);
    default:
      return hostKVGet(k, kl, o, cap);
  }
}

// fetch asks the host, growing the buffer and asking again when the answer
// did not fit (§6); null means absent. Three rounds cover a value that
// changed between two calls without looping forever on a misbehaving host.
function fetch(which: i32, key: ArrayBuffer | null): ArrayBuffer | null {
  let cap = 256;
  for (let round = 0; round < 3; round++) {
    const out = new ArrayBuffer(cap);
    const n = callFetcher(which, key, out);
    if (n < 0) return null;
    if (n <= cap) return out.slice(0, n);
    cap = n;
  }
  return null;
}

// kvGet returns the value stored under key, or null.
export function kvGet(key: string): ArrayBuffer | null {
  return fetch(FETCH_KV, String.UTF8.encode(key));
}

// kvGetString returns the value under key as a string, or null.
export function kvGetString(key: string): string | null {
  const b = kvGet(key);
  return b == null ? null : String.UTF8.decode(b);
}

// kvSet stores value under key for ttlMs (<= 0: the host's default
// lifetime); false when the host refused.
export function kvSet(key: string, value: ArrayBuffer, ttlMs: i64 = 0): bool {
  const k = String.UTF8.encode(key);
  return hostKVSet(changetype<usize>(k), k.byteLength, changetype<usize>(value), value.byteLength, ttlMs) == 0;
}

export function kvSetString(key: string, value: string, ttlMs: i64 = 0): bool {
  return kvSet(key, String.UTF8.encode(value), ttlMs);
}

// Counter is the answer of kvIncr.
export class Counter {
  constructor(public refused: bool, public value: i64) {}
}

// kvIncr atomically adds delta to the counter under key (created at delta
// with lifetime ttlMs) and returns its new value.
export function kvIncr(key: string, delta: i64, ttlMs: i64 = 0): Counter {
  const k = String.UTF8.encode(key);
  const out = new ArrayBuffer(8);
  const rc = hostKVIncr(changetype<usize>(k), k.byteLength, delta, ttlMs, changetype<usize>(out));
  return new Counter(rc != 0, load<i64>(changetype<usize>(out)));
}

// ---- decoding what host functions answer ----

function reader(b: ArrayBuffer): Reader {
  const p = changetype<usize>(b);
  return new Reader(p, p + <usize>b.byteLength);
}

function decodeStamp(b: ArrayBuffer): Stamp | null {
  const s = new Stamp();
  const r = reader(b);
  while (!r.done) {
    const tag = r.field();
    const p = r.payload!;
    if (tag == 1) s.id = p.rest();
    else if (tag == 2) s.firstSeen = <i64>p.int();
    else if (tag == 3) s.headerName = p.rest();
    else if (tag == 4) s.headerValue = p.rest();
    else if (tag == 5) s.state = <i32>p.int();
    else if (tag == 6) s.invalid.push(<i32>p.int());
    if (!p.ok) r.ok = false;
  }
  return decoded<Stamp>(r, s, "stamp");
}

function decodeRecord(b: ArrayBuffer): LedgerRecord | null {
  const rec = new LedgerRecord();
  const r = reader(b);
  while (!r.done) {
    const tag = r.field();
    const p = r.payload!;
    if (tag == 1) rec.id = p.rest();
    else if (tag == 2) rec.firstSeen = <i64>p.int();
    else if (tag == 3) rec.lastSeen = <i64>p.int();
    else if (tag == 4) rec.attempts = <i64>p.int();
    else if (tag == 5) rec.state = p.rest();
    else if (tag == 6) rec.code = <i32>p.int();
    else if (tag == 7) rec.enhanced = p.rest();
    else if (tag == 8) rec.text = p.rest();
    else if (tag == 9) rec.notices = <i64>p.int();
    else if (tag == 10) rec.lastNotice = <i64>p.int();
    if (!p.ok) r.ok = false;
  }
  return decoded<LedgerRecord>(r, rec, "record");
}

function decodeProperties(b: ArrayBuffer): Properties | null {
  const pr = new Properties();
  const r = reader(b);
  while (!r.done) {
    const tag = r.field();
    const p = r.payload!;
    switch (tag) {
      case 1: pr.messageId = p.rest(); break;
      case 2: pr.from = p.rest(); break;
      case 3: pr.fromName = p.rest(); break;
      case 4: pr.sender = p.rest(); break;
      case 5: pr.toCount = <i64>p.int(); break;
      case 6: pr.ccCount = <i64>p.int(); break;
      case 7: pr.date = <i64>p.int(); break;
      case 8: pr.subject = p.rest(); break;
      case 9: pr.contentType = p.rest(); break;
      case 10: pr.receivedCount = <i64>p.int(); break;
      case 11: pr.listId = p.rest(); break;
      case 12: pr.autoSubmitted = p.rest(); break;
      case 13: pr.precedence = p.rest(); break;
      case 14: pr.isDeliveryReport = p.int() != 0; break;
      case 15: pr.headerCount = <i64>p.int(); break;
      case 16: pr.headerBytes = <i64>p.int(); break;
      case 17: pr.problems.push(p.rest()); break;
    }
    if (!p.ok) r.ok = false;
  }
  return decoded<Properties>(r, pr, "properties");
}

// decoded returns v, or logs that the host's answer did not decode and
// reports it as absent.
function decoded<T>(r: Reader, v: T, what: string): T | null {
  if (r.ok) return v;
  log(LogLevel.Error, `wasmilter AssemblyScript SDK: cannot decode the ${what} from the host`);
  return null;
}

// abort replaces AssemblyScript's default abort (an import from "env",
// which the host does not provide): it logs why and traps, so the host
// applies the plugin's on_error policy.
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  const what = message == null ? "abort" : message;
  const where = fileName == null ? "?" : fileName;
  log(LogLevel.Error, `wasmilter plugin aborted: ${what} at ${where}:${line}:${column}`);
  unreachable();
}
