// The exports of plugin ABI v1 (sdk/ABI.md §1). A plugin's entry file
// re-exports them all:
//
//   export * from "wasmilter-sdk/assembly/exports";

import { Reader, Writer } from "./encoding";
import {
  Config,
  ConfigEntry,
  Handler,
  Header,
  Hook,
  LogLevel,
  Message,
  Recipient,
  Verdict,
  VerdictKind,
  answer,
  log,
  registerError,
  registered,
} from "./index";

const ABI_VERSION: i32 = 1;

// Event field tags (§3).
const EV_HOOK: u8 = 1;
const EV_NOW: u8 = 2;
const EV_CLIENT_HOST: u8 = 3;
const EV_CLIENT_ADDR: u8 = 4;
const EV_CLIENT_PORT: u8 = 5;
const EV_FAMILY: u8 = 6;
const EV_HELO: u8 = 7;
const EV_QUEUE_ID: u8 = 8;
const EV_FROM: u8 = 9;
const EV_FROM_ARG: u8 = 10;
const EV_RCPT: u8 = 11;
const EV_HEADER: u8 = 12;

// exchange is the buffer the host writes events and the config into. A
// global keeps it alive, and AssemblyScript's collector does not move
// objects, so the address handed out stays valid until it has to grow.
let exchange = new ArrayBuffer(4096);

export function wasmilter_abi_version(): i32 {
  return ABI_VERSION;
}

export function wasmilter_buffer(size: i32): usize {
  if (size > exchange.byteLength) exchange = new ArrayBuffer(size);
  return changetype<usize>(exchange);
}

function input(len: i32): Reader {
  if (len < 0 || len > exchange.byteLength) {
    log(LogLevel.Error, "wasmilter AssemblyScript SDK: the host passed a length larger than the exchange buffer");
    unreachable();
  }
  const p = changetype<usize>(exchange);
  return new Reader(p, p + <usize>len);
}

function handlerFor(hook: Hook): Handler | null {
  const p = registered;
  if (p == null) return null;
  switch (hook) {
    case Hook.Connect: return p.connect;
    case Hook.Helo: return p.helo;
    case Hook.Mail: return p.mail;
    case Hook.Rcpt: return p.rcpt;
    case Hook.Headers: return p.headers;
    case Hook.Message: return p.message;
    case Hook.Delay: return p.delay;
  }
  return null;
}

function handledHooks(): u32 {
  let set: u32 = 0;
  for (let h = 0; h <= <i32>Hook.Delay; h++) {
    if (handlerFor(<Hook>h) != null) set |= 1 << h;
  }
  return set;
}

// ---- init ----

const INIT_ERROR: u8 = 1;
const INIT_HOOKS: u8 = 3;
const CONFIG_ENTRY: u8 = 1;

function decodeConfig(r: Reader): Config | null {
  const cfg = new Config();
  while (!r.done) {
    const tag = r.field();
    const p = r.payload!;
    if (tag == CONFIG_ENTRY) {
      const key = p.str();
      cfg.entries.push(new ConfigEntry(key, p.strList()));
    }
    if (!p.ok) r.ok = false;
  }
  return r.ok ? cfg : null;
}

// initError runs the plugin's init and returns why it refuses, or "".
function initError(len: i32): string {
  if (registerError.length > 0) return registerError;
  const p = registered;
  if (p == null) return "no plugin registered: call register(plugin) at the top level of the entry file";
  if (handledHooks() == 0) {
    return "the plugin has no hook handler (set connect, helo, mail, rcpt, headers, message or delay)";
  }
  const cfg = decodeConfig(input(len));
  if (cfg == null) return "decoding the plugin config: malformed encoding";
  const init = p.init;
  if (init == null) {
    if (cfg.entries.length > 0) {
      log(LogLevel.Warn, `plugin has no init; its ${cfg.entries.length} config keys are ignored`);
    }
    return "";
  }
  const err = init(cfg);
  if (err != null) return err.length > 0 ? err : "init failed";
  if (cfg.errors.length > 0) return cfg.errors.join("\n");
  const unread = cfg.unread();
  if (unread.length > 0) log(LogLevel.Warn, `config keys not used by the plugin (typo?): ${unread.join(", ")}`);
  return "";
}

export function wasmilter_init(len: i32): i64 {
  const err = initError(len);
  answer.reset();
  if (err.length > 0) answer.stringField(INIT_ERROR, err);
  else answer.uintField(INIT_HOOKS, <u64>handledHooks());
  return answer.packed();
}

// ---- hooks ----

function decodeEventField(m: Message, tag: u8, p: Reader): void {
  switch (tag) {
    case EV_HOOK: m.hook = <Hook>p.int(); break;
    case EV_NOW: m.now = <i64>p.int(); break;
    case EV_CLIENT_HOST: m.clientHost = p.rest(); break;
    case EV_CLIENT_ADDR: m.clientAddr = p.rest(); break;
    case EV_CLIENT_PORT: m.clientPort = <i32>p.int(); break;
    case EV_FAMILY: m.family = p.rest(); break;
    case EV_HELO: m.helo = p.rest(); break;
    case EV_QUEUE_ID: m.queueId = p.rest(); break;
    case EV_FROM: m.from = p.rest(); break;
    case EV_FROM_ARG: m.fromArgs.push(p.rest()); break;
    case EV_RCPT: {
      const addr = p.str();
      m.rcpts.push(new Recipient(addr, p.strList()));
      break;
    }
    case EV_HEADER: {
      const name = p.str();
      m.headers.push(new Header(name, p.rest())); // the value is the rest of the payload
      break;
    }
    default: break; // a newer host's field: skip it (§3)
  }
}

function decodeEvent(r: Reader): Message | null {
  const m = new Message();
  while (!r.done) {
    const tag = r.field();
    const p = r.payload!;
    if (r.ok) decodeEventField(m, tag, p);
    if (!p.ok) r.ok = false;
  }
  return r.ok ? m : null;
}

function putVerdict(w: Writer, v: Verdict): void {
  if (v.kind != VerdictKind.Continue) w.uintField(1, <u64>v.kind);
  if (v.code != 0) w.uintField(2, <u64>v.code);
  w.stringField(3, v.enhanced);
  w.stringField(4, v.text);
}

function runHook(hook: Hook, len: i32): i64 {
  const handle = handlerFor(hook);
  if (handle == null) return 0; // the host asked anyway: no objection
  answer.reset();
  const m = decodeEvent(input(len));
  if (m == null) {
    log(LogLevel.Error, `wasmilter AssemblyScript SDK: malformed event at hook ${<i32>hook}`);
    unreachable();
  }
  m!.hook = hook; // the export called is what decides, whatever the event says
  putVerdict(answer, handle(m!));
  return answer.packed();
}

export function wasmilter_on_connect(len: i32): i64 {
  return runHook(Hook.Connect, len);
}
export function wasmilter_on_helo(len: i32): i64 {
  return runHook(Hook.Helo, len);
}
export function wasmilter_on_mail(len: i32): i64 {
  return runHook(Hook.Mail, len);
}
export function wasmilter_on_rcpt(len: i32): i64 {
  return runHook(Hook.Rcpt, len);
}
export function wasmilter_on_headers(len: i32): i64 {
  return runHook(Hook.Headers, len);
}
export function wasmilter_on_message(len: i32): i64 {
  return runHook(Hook.Message, len);
}
export function wasmilter_on_delay(len: i32): i64 {
  return runHook(Hook.Delay, len);
}
