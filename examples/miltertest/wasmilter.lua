-- Drive a running wasmilter the way an MTA does, with Debian's miltertest:
--
--   wasmilter serve -config examples/miltertest/wasmilter.toml &
--   miltertest -s examples/miltertest/wasmilter.lua -D socket=inet:8897@127.0.0.1
--
-- (-D socket=unix:/run/wasmilter/milter.sock for a unix socket.)
--
-- Two messages on one milter connection, as Postfix sends them:
--   1. from partner.example, which the greylist lets through: at end of
--      message wasmilter adds its stamp header;
--   2. from example.org: greylisted with 451 4.7.1 on its header (at end
--      of message, since wasmilter negotiates end of header away when no
--      plugin reads the body); the deferral is in the ledger before the
--      reply is sent.
-- Any surprise ends the script with an error, and miltertest exits
-- non-zero. Every run uses new Message-IDs (-D run=NAME to choose them),
-- so the second message is unknown to the ledger and greylisted again.

if socket == nil then
	mt.echo("FAIL: no milter socket: pass -D socket=inet:8897@127.0.0.1 or -D socket=unix:/PATH")
	error("no milter socket: pass -D socket=inet:8897@127.0.0.1 or -D socket=unix:/PATH")
end
if run == nil then
	run = os.time() .. "." .. math.random(1000000)
end

-- fail ends the script. miltertest exits 1 on error() but does not print
-- its message, so the reason goes to standard output first.
local function fail(why)
	mt.echo("FAIL: " .. why)
	error(why)
end

-- call runs a miltertest function and fails the script, saying what it
-- was doing, when the function raised an error or returned one.
local function call(what, f, ...)
	local okay, err = pcall(f, ...)
	if not okay or err ~= nil then
		fail(what .. ": " .. tostring(err))
	end
end

-- reply names the milter replies this script expects.
local replies = {
	[SMFIR_CONTINUE] = "continue",
	[SMFIR_ACCEPT] = "accept",
	[SMFIR_TEMPFAIL] = "tempfail",
	[SMFIR_REPLYCODE] = "replycode",
	[SMFIR_REJECT] = "reject",
}
local function reply(conn)
	local r = mt.getreply(conn)
	return replies[r] or ("reply " .. tostring(r))
end

-- envelope and header of a message from sender, up to end of header.
local function message(conn, queueid, sender, subject)
	call("macro i", mt.macro, conn, SMFIC_MAIL, "i", queueid)
	call("MAIL FROM", mt.mailfrom, conn, "<" .. sender .. ">")
	call("RCPT TO", mt.rcptto, conn, "<bob@example.net>")
	call("header From", mt.header, conn, "From", sender)
	call("header To", mt.header, conn, "To", "bob@example.net")
	call("header Subject", mt.header, conn, "Subject", subject)
	call("header Message-ID", mt.header, conn, "Message-ID", "<" .. queueid .. "." .. run .. "@miltertest.example>")
	-- wasmilter asks for no end of header when no plugin reads the body
	-- (SMFIP_NOEOH): it decides on the header at end of message instead,
	-- one round trip less for the MTA.
	if not mt.test_option(conn, SMFIP_NOEOH) then
		call("end of header", mt.eoh, conn)
	end
end

mt.set_timeout(10)
local conn = mt.connect(socket, 40, 0.25)
if conn == nil then
	fail("cannot connect to wasmilter at " .. socket)
end
call("negotiate", mt.negotiate, conn, nil, nil, nil)
call("connect macros", mt.macro, conn, SMFIC_CONNECT, "j", "mx.example.net", "{daemon_name}", "smtpd")
call("connect", mt.conninfo, conn, "mail.partner.example", "192.0.2.10")
call("HELO", mt.helo, conn, "mail.partner.example")

-- 1. Passes the greylist; stamped at end of message.
message(conn, "4MT0001", "alice@partner.example", "stamped")
-- wasmilter asks for no body when no plugin reads one (SMFIP_NOBODY),
-- and an MTA then sends none.
if not mt.test_option(conn, SMFIP_NOBODY) then
	call("body", mt.bodystring, conn, "Hello from miltertest.\r\n")
end
call("end of message", mt.eom, conn)
local r = reply(conn)
if r ~= "accept" and r ~= "continue" then
	fail("message 1: end of message answered " .. r .. ", want accept or continue")
end
if not (mt.eom_check(conn, MT_HDRINSERT, "X-Wasmilter-Stamp") or mt.eom_check(conn, MT_HDRADD, "X-Wasmilter-Stamp")) then
	fail("message 1: no X-Wasmilter-Stamp header added at end of message")
end
mt.echo("message 1: " .. r .. ", X-Wasmilter-Stamp: " .. mt.getheader(conn, "X-Wasmilter-Stamp", 0))

-- 2. Greylisted: a 4xx on the header (at end of header, or at end of
-- message when end of header was negotiated away), and the MTA ends the
-- transaction.
message(conn, "4MT0002", "carol@example.org", "greylisted")
local stage = "end of header"
if mt.test_option(conn, SMFIP_NOEOH) then
	stage = "end of message"
	call("end of message", mt.eom, conn)
end
r = reply(conn)
if r ~= "tempfail" and r ~= "replycode" then
	fail("message 2: " .. stage .. " answered " .. r .. ", want the greylist's 451 (tempfail or replycode)")
end
mt.echo("message 2: " .. r .. " at " .. stage .. " (greylisted)")
call("abort", mt.abort, conn)

call("disconnect", mt.disconnect, conn)
mt.echo("ok")
