-- wrk script of `make compare` (scripts/compare.sh): the same load on etcd's JSON gateway
-- and on tessera's HTTP API. Arguments after `--`: SYSTEM (etcd|tessera) MODE (write|read)
-- KEYS VALUE_BYTES.
--   write: etcd `POST /v3/kv/put`, tessera `PUT /v1/kv/KEY`; a 256-byte value.
--   read:  linearizable reads: etcd `POST /v3/kv/range` (its default is linearizable),
--          tessera `GET /v1/kv/KEY` (its default is linearizable).
-- Keys are `compare/NNNN`, drawn uniformly from KEYS. `done` prints one line the script
-- parses: `RESULT requests errors p50_us p99_us duration_us mean_us`.

local b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end

local system, mode, keys, value
local bodies = {}

function init(args)
  system = args[1] or 'tessera'
  mode = args[2] or 'write'
  keys = tonumber(args[3] or '1000')
  local size = tonumber(args[4] or '256')
  value = string.rep('v', size)
  math.randomseed(os.time() + (tonumber(tostring({}):match('0x(%x+)'), 16) or 0))
  if system == 'etcd' then
    local v64 = b64(value)
    for k = 1, keys do
      local key64 = b64(string.format('compare/%04d', k))
      if mode == 'write' then
        bodies[k] = '{"key":"' .. key64 .. '","value":"' .. v64 .. '"}'
      else
        bodies[k] = '{"key":"' .. key64 .. '"}'
      end
    end
  end
end

function request()
  local k = math.random(keys)
  if system == 'etcd' then
    local path = mode == 'write' and '/v3/kv/put' or '/v3/kv/range'
    return wrk.format('POST', path, { ['Content-Type'] = 'application/json' }, bodies[k])
  end
  local path = string.format('/v1/kv/compare/%04d', k)
  if mode == 'write' then
    return wrk.format('PUT', path, nil, value)
  end
  return wrk.format('GET', path)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format('RESULT %d %d %d %d %d %d\n', summary.requests, errors,
    latency:percentile(50), latency:percentile(99), summary.duration, latency.mean))
end
