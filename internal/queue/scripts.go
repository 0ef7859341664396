package queue

import "github.com/redis/go-redis/v9"

// Each script touches only keys of one hash tag, declared in KEYS, so each
// runs atomically on one Redis Cluster slot. They use only commands
// miniredis also implements.
//
// The scripts that act on a failure first check, with XPENDING's consumer
// filter, that the entry is still pending for this consumer: a consumer that
// was too slow and lost its entry to XAUTOCLAIM must not schedule or bury a
// job that another consumer now runs, or the job would exist twice.

// complete acknowledges and deletes a finished entry and returns 1 if it was
// still pending. It does not check the owner: the work is done, whoever
// holds the entry now would only repeat it.
var complete = redis.NewScript(`
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return n
`)

// reschedule takes a failed entry out of the stream and puts its job, with
// the next attempt number, in the delayed ZSET (ARGV[5] = due ms) or, when
// ARGV[5] is empty, straight back on the stream. Doing the acknowledgement
// and the re-add in one script is what keeps a crash from losing or
// doubling the job between the two.
var reschedule = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if ARGV[5] == '' then
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
end
return 1
`)

// bury moves a failed entry to the dead-letter stream and returns the new
// entry's ID, or false when the entry is no longer this consumer's.
var bury = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2]) == 0 then return false end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return redis.call('XADD', KEYS[2], '*', 'job', ARGV[4], 'error', ARGV[5], 'cause', ARGV[6], 'failed_ms', ARGV[7])
`)

// extend resets the idle time of the consumer's running entries so
// XAUTOCLAIM leaves them alone, and returns the IDs it no longer owns.
// RETRYCOUNT keeps the delivery count as it was: Redis leaves it alone for
// JUSTID, miniredis would not, and it counts attempts.
var extend = redis.NewScript(`
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 0 then
    lost[#lost + 1] = ARGV[i]
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'RETRYCOUNT', p[1][4], 'JUSTID')
  end
end
return lost
`)

// move puts up to ARGV[2] due retries back on the stream and returns how
// many it moved. Several Runs may call it at once; being one script, each
// job moves exactly once.
var move = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', job)
  redis.call('ZREM', KEYS[1], job)
end
return #due
`)

// revive moves a dead letter back to the stream (KEYS[2]) with the job Go
// rebuilt, only if the dead letter still exists.
var revive = redis.NewScript(`
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return false end
return redis.call('XADD', KEYS[2], '*', 'job', ARGV[2])
`)

// retire removes a stopped consumer from the group when nothing is pending
// for it, so consumer names of past processes do not pile up. Checked in
// the script because DELCONSUMER drops the consumer's pending entries.
var retire = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
`)

// writeStatus writes a job's status hash and refreshes its TTL.
// ARGV: a precondition (empty for none; "-": only if the record is absent;
// a state: only if absent or in that state), TTL ms, count of base args, count of
// set args, base field/value pairs (written only where missing, so a record
// lost to a crash or expiry is rebuilt), set pairs, then fields to delete.
// The preconditions serve writes that race a worker: the worker's newer
// state must win.
var writeStatus = redis.NewScript(`
if ARGV[1] ~= '' then
  local state = redis.call('HGET', KEYS[1], 'state')
  if state and (ARGV[1] == '-' or state ~= ARGV[1]) then return 0 end
end
local nb, ns = tonumber(ARGV[3]), tonumber(ARGV[4])
local i = 5
for j = i, i + nb - 1, 2 do redis.call('HSETNX', KEYS[1], ARGV[j], ARGV[j + 1]) end
i = i + nb
for j = i, i + ns - 1, 2 do redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]) end
i = i + ns
for j = i, #ARGV do redis.call('HDEL', KEYS[1], ARGV[j]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)
