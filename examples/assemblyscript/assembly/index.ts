// nolottery — an example wasmilter plugin written with the AssemblyScript
// SDK (sdk/assemblyscript).
//
// At the end of the headers:
//   - a message whose Subject contains the configured word (compared
//     without regard to case) is rejected with 550 5.7.1;
//   - any other message gets "X-Checked-By: nolottery at <host>", where
//     <host> is the MTA's macro j (its host name), or just "nolottery" when
//     the MTA did not send it.
//
// Config ([plugins.config]):
//   word = "lottery"   # the default; an empty word refuses to start
//
// Build: npm ci && npm run build   (writes build/nolottery.wasm)

import { Config, LogLevel, Message, Plugin, Verdict, register } from "wasmilter-sdk/assembly";

// The ABI's exports: every plugin's entry file re-exports them.
export * from "wasmilter-sdk/assembly/exports";

// Set once per instance by configure; the handler only reads it.
let word = "";

function configure(cfg: Config): string | null {
  word = cfg.getString("word", "lottery").toLowerCase();
  if (word.length == 0) return 'config key "word" must not be empty';
  return null;
}

function onHeaders(m: Message): Verdict {
  const subject = m.header("Subject");
  if (subject != null && subject.toLowerCase().includes(word)) {
    m.log(LogLevel.Info, `rejecting message ${m.queueId}: subject contains "${word}"`);
    return Verdict.reject(550, "5.7.1", "We do not take part in lotteries");
  }
  const host = m.macro("j");
  m.addHeader("X-Checked-By", host == null ? "nolottery" : `nolottery at ${host}`);
  return Verdict.continue();
}

const plugin = new Plugin();
plugin.init = configure;
plugin.headers = onHeaders;
register(plugin);
