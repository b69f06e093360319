package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is cluster mode on one Redis server (or a primary with
// replicas; not Redis Cluster: the scripts touch keys they compute).
// Key schema (docs/cluster.md), under a prefix (default "invigil:"):
//
//	node:<id>      hash: the node's occupancy, expires NodeTTL after its last heartbeat
//	nodes          set: ids of nodes that have heartbeated (pruned when node:<id> is gone)
//	room:<room>    string: the owning node's id, expires LeaseTTL after the last renewal
//	resv:<id>      sorted set: "<room>|<seats>" placed on the node, score = expiry (unix ms)
//	resvsum:<id>   integer: the seats of resv:<id>'s unexpired members
//	arrived:<id>   sorted set: arrival numbers of claims that took a reserved seat after the node's last heartbeat counted (Heartbeat)
//	recording-keys hash: node id → the node's recording keyring (JSON), never expires (keys.go)
type Redis struct {
	rdb    *redis.Client
	prefix string

	// epochMu guards epoch: the store's epoch as this node first saw it
	// (see settle), "" before the first placement or claim.
	epochMu sync.Mutex
	epoch   string
}

// SettleTime is how long after the cluster store came back empty (a
// Redis restarted without persistence) a node that knew it before
// assigns no room without a live owner: long enough for every node to
// renew its leases (LeaseRenew) and heartbeat, so the rooms they hold
// are theirs again before anyone else can take them.
const SettleTime = LeaseRenew + HeartbeatInterval

// settleLua is the part of the placement and claim scripts that finds
// the store's epoch (made by the first script after the store started
// empty) and says whether rooms without a live owner must wait: when the
// caller knew another epoch, this one is younger than SettleTime. Needs
// prefix, now, known (the caller's epoch) and settle (ms) set.
const settleLua = `
local epochKey = prefix .. 'epoch'
local epoch = redis.call('GET', epochKey)
if not epoch then
  epoch = tostring(now)
  redis.call('SET', epochKey, epoch)
end
local settling = known ~= '' and known ~= epoch and now - tonumber(epoch) < settle
`

// NewRedis connects to url (redis://[user:pass@]host:port/db). It does
// not fail when Redis is down: calls fail with ErrUnavailable until it
// is back.
func NewRedis(url, prefix string) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cluster: --redis-url: %w", err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = redisTimeout, redisTimeout, redisTimeout
	opt.MaxRetries = 1
	return withPrefix(redis.NewClient(opt), prefix), nil
}

// redisTimeout bounds each dial, read and write: a node must not hang a
// join on a Redis that stopped answering.
const redisTimeout = time.Second

// Sentinel names a primary that Redis Sentinel watches, for
// NewRedisSentinel.
type Sentinel struct {
	// Addrs are host:port of the sentinels (any of them will do; the
	// client learns the others).
	Addrs []string
	// Master is the name the sentinels monitor the primary under.
	Master string
	// URL, when set, gives the username, password and database
	// (redis://[user:pass@]host/db); its host is not used.
	URL string
}

// NewRedisSentinel connects to the primary that the sentinels in s name,
// through go-redis's failover client: when the sentinels fail over, the
// client follows the new primary (it listens for +switch-master and asks
// the sentinels again when a connection fails). What a failover can lose
// and how the trail makes up for it: docs/cluster.md, "Redis Sentinel".
// Like NewRedis, it does not fail when Redis is down.
func NewRedisSentinel(s Sentinel, prefix string) (*Redis, error) {
	if len(s.Addrs) == 0 || s.Master == "" {
		return nil, errors.New("cluster: Redis Sentinel needs sentinel addresses and a master name")
	}
	opt := &redis.FailoverOptions{
		MasterName:    s.Master,
		SentinelAddrs: s.Addrs,
		DialTimeout:   redisTimeout,
		ReadTimeout:   redisTimeout,
		WriteTimeout:  redisTimeout,
		MaxRetries:    1,
	}
	if s.URL != "" {
		u, err := redis.ParseURL(s.URL)
		if err != nil {
			return nil, fmt.Errorf("cluster: --redis-url: %w", err)
		}
		opt.Username, opt.Password, opt.DB = u.Username, u.Password, u.DB
	}
	return withPrefix(redis.NewFailoverClient(opt), prefix), nil
}

func withPrefix(rdb *redis.Client, prefix string) *Redis {
	if prefix == "" {
		prefix = "invigil:"
	}
	return &Redis{rdb: rdb, prefix: prefix}
}

// Client is the underlying go-redis client (the audit store shares it).
func (r *Redis) Client() *redis.Client { return r.rdb }

// Prefix starts every key of this cluster's (the audit store's too).
func (r *Redis) Prefix() string { return r.prefix }

// HeartbeatPrefix starts the key of each node's heartbeat ("node:<id>",
// gone NodeTTL after the node's last one): the trail spool asks it
// whether a room's previous writer is alive.
func (r *Redis) HeartbeatPrefix() string { return r.prefix + "node:" }

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Heartbeat writes the node's hash with its TTL and lists the node, in
// one atomic step with the claims that took reserved seats on it.
//
// A claim takes an arriving participant's seat off the room's
// reservation and off free_seats at once; the heartbeat overwrites
// free_seats with the node's own count, in which the participant is
// arriving or in the room only if its arrival number is at most
// n.ArrivalSeq. So a claim numbered above the last heartbeat's
// ArrivalSeq is remembered (arrived:<id>) and subtracted from the
// next heartbeat's free seats when that heartbeat does not count it
// yet; a claim numbered at or below it is in the count already and
// leaves free_seats alone. Each seat is counted once, whichever runs
// first.
func (r *Redis) Heartbeat(ctx context.Context, n Node) error {
	draining := "0"
	if n.Draining {
		draining = "1"
	}
	err := heartbeatScript.Run(ctx, r.rdb, nil, r.prefix, n.ID, NodeTTL.Milliseconds(),
		n.FreeSeats, n.ArrivalSeq,
		"url", n.URL, "rooms", n.Rooms, "students", n.Students, "proctors", n.Proctors,
		"tracks", n.Tracks, "forwarded_bps", n.BitrateBps, "cpu", strconv.FormatFloat(n.CPU, 'f', 3, 64),
		"capacity", n.Capacity, "draining", draining, "version", n.Version,
		"updated_unix_ms", time.Now().UnixMilli()).Err()
	return unavailable(err)
}

// heartbeatScript: ARGV = prefix, id, ttl (ms), free seats, arrival
// number, then field/value pairs for the node's hash. Arrival numbers
// are passed and stored as strings (Lua's numbers print them rounded).
var heartbeatScript = redis.NewScript(`
local prefix, id, ttl, free, seq = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local key, ak = prefix .. 'node:' .. id, prefix .. 'arrived:' .. id
local late = redis.call('ZCOUNT', ak, '(' .. seq, '+inf')
redis.call('ZREMRANGEBYSCORE', ak, '-inf', seq)
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, 'free_seats', math.max(free - late, 0), 'arrival_seq', seq, unpack(fields))
redis.call('PEXPIRE', key, ttl)
if late > 0 then redis.call('PEXPIRE', ak, ttl) end
redis.call('SADD', prefix .. 'nodes', id)
return late
`)

// Nodes lists the nodes whose heartbeat is alive.
func (r *Redis) Nodes(ctx context.Context) ([]Node, error) {
	ids, err := r.rdb.SMembers(ctx, r.prefix+"nodes").Result()
	if err != nil {
		return nil, unavailable(err)
	}
	var out []Node
	for _, id := range ids {
		h, err := r.rdb.HGetAll(ctx, r.prefix+"node:"+id).Result()
		if err != nil {
			return nil, unavailable(err)
		}
		if len(h) == 0 {
			continue
		}
		atoi := func(k string) int { v, _ := strconv.Atoi(h[k]); return v }
		bps, _ := strconv.ParseUint(h["forwarded_bps"], 10, 64)
		cpu, _ := strconv.ParseFloat(h["cpu"], 64)
		upd, _ := strconv.ParseInt(h["updated_unix_ms"], 10, 64)
		out = append(out, Node{ID: id, URL: h["url"], Rooms: atoi("rooms"), Students: atoi("students"),
			Proctors: atoi("proctors"), Tracks: atoi("tracks"), BitrateBps: bps, CPU: cpu,
			Capacity: atoi("capacity"), FreeSeats: atoi("free_seats"), Draining: h["draining"] == "1",
			Version: h["version"], UpdatedUnix: upd})
	}
	return out, nil
}

// placeScript returns the live owner of a room, or assigns the ready node
// with the most free seats after unexpired reservations, if it has room
// for the expected seats; all in one atomic step. Returns {id, url} or
// {"", ""} when no node has room.
var placeScript = redis.NewScript(`
local prefix, room, expected, now, lease, resv = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local known, settle = ARGV[7], tonumber(ARGV[8])
` + settleLua + `
local roomKey = prefix .. 'room:' .. room
local owner = redis.call('GET', roomKey)
if owner then
  local url = redis.call('HGET', prefix .. 'node:' .. owner, 'url')
  if url then return {owner, url, epoch} end
end
if settling then return {'', '', epoch, 'settling'} end
local best, bestURL, bestFree = nil, nil, -1
for _, id in ipairs(redis.call('SMEMBERS', prefix .. 'nodes')) do
  local h = redis.call('HMGET', prefix .. 'node:' .. id, 'url', 'free_seats', 'draining')
  if not h[1] then
    redis.call('SREM', prefix .. 'nodes', id)
  elseif h[3] ~= '1' then
    local rk, sk = prefix .. 'resv:' .. id, prefix .. 'resvsum:' .. id
    local expired = redis.call('ZRANGEBYSCORE', rk, '-inf', now)
    if #expired > 0 then
      local gone = 0
      for _, m in ipairs(expired) do gone = gone + tonumber(string.match(m, '|(%d+)$') or '0') end
      redis.call('ZREMRANGEBYSCORE', rk, '-inf', now)
      redis.call('DECRBY', sk, gone)
    end
    local free = tonumber(h[2] or '0') - tonumber(redis.call('GET', sk) or '0')
    if free >= math.max(expected, 1) and (free > bestFree or (free == bestFree and id < best)) then
      best, bestURL, bestFree = id, h[1], free
    end
  end
end
if not best then return {'', '', epoch} end
redis.call('SET', roomKey, best, 'PX', lease)
if expected > 0 then
  local rk, sk = prefix .. 'resv:' .. best, prefix .. 'resvsum:' .. best
  if redis.call('ZADD', rk, now + resv, room .. '|' .. expected) == 1 then
    redis.call('INCRBY', sk, expected)
  end
  redis.call('PEXPIRE', rk, resv)
  redis.call('PEXPIRE', sk, resv)
end
return {best, bestURL, epoch}
`)

// Place implements Cluster.
func (r *Redis) Place(ctx context.Context, room string, expected int) (Placement, error) {
	return r.placeAt(ctx, room, expected, time.Now())
}

// placeAt is Place at a given time (tests move the clock past
// reservations).
func (r *Redis) placeAt(ctx context.Context, room string, expected int, now time.Time) (Placement, error) {
	res, err := placeScript.Run(ctx, r.rdb, nil, r.prefix, room, max(expected, 0),
		now.UnixMilli(), LeaseTTL.Milliseconds(), ReservationTTL.Milliseconds(), r.knownEpoch(), SettleTime.Milliseconds()).StringSlice()
	if err != nil {
		return Placement{}, unavailable(err)
	}
	if err := r.settled(res); err != nil {
		return Placement{}, err
	}
	if len(res) < 2 || res[0] == "" {
		return Placement{}, ErrNoCapacity
	}
	return Placement{Room: room, NodeID: res[0], URL: res[1]}, nil
}

// arriveLua is the part of the claim script that takes one seat off the
// room's reservation on node (a participant arriving at the node the
// room was placed on) and counts it in the node's free seats instead,
// until the node's next heartbeat counts it itself: the seat moves from
// one to the other in one step, so a join storm neither counts its
// students twice (reserved and present) nor not at all: a claim whose
// arrival (seq) the node's last heartbeat counted already leaves
// free_seats alone, and one it did not is remembered for the next
// (see Heartbeat). Needs prefix, room, node, now and seq set.
const arriveLua = `
local function arrive()
  local rk, sk = prefix .. 'resv:' .. node, prefix .. 'resvsum:' .. node
  local live = redis.call('ZRANGEBYSCORE', rk, now, '+inf', 'WITHSCORES')
  for i = 1, #live, 2 do
    local r, seats = string.match(live[i], '^(.*)|(%d+)$')
    if r == room then
      seats = tonumber(seats)
      redis.call('ZREM', rk, live[i])
      if seats > 1 then redis.call('ZADD', rk, live[i + 1], room .. '|' .. (seats - 1)) end
      if tonumber(redis.call('GET', sk) or '0') > 0 then redis.call('DECR', sk) end
      local nk = prefix .. 'node:' .. node
      if redis.call('EXISTS', nk) == 1 then
        local counted = redis.call('HGET', nk, 'arrival_seq')
        if seq == '0' or not counted or tonumber(seq) > tonumber(counted) then
          redis.call('HINCRBY', nk, 'free_seats', -1)
          if seq ~= '0' then
            local ak = prefix .. 'arrived:' .. node
            redis.call('ZADD', ak, seq, seq)
            redis.call('PEXPIRE', ak, ttl)
          end
        end
      end
      return
    end
  end
end
`

// claimScript returns the room's live owner, or makes ARGV[3] the owner
// (and takes the arriving participant's seat off the room's
// reservation there).
var claimScript = redis.NewScript(`
local prefix, room, node, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local known, now, settle = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local seq, ttl = ARGV[8], tonumber(ARGV[9])
` + settleLua + arriveLua + `
local roomKey = prefix .. 'room:' .. room
local owner = redis.call('GET', roomKey)
if owner == node then
  redis.call('SET', roomKey, node, 'PX', lease)
  arrive()
  return {node, redis.call('HGET', prefix .. 'node:' .. node, 'url') or '', epoch}
end
if owner then
  local url = redis.call('HGET', prefix .. 'node:' .. owner, 'url')
  if url then return {owner, url, epoch} end
end
if settling then return {'', '', epoch, 'settling'} end
redis.call('SET', roomKey, node, 'PX', lease)
arrive()
return {node, redis.call('HGET', prefix .. 'node:' .. node, 'url') or '', epoch}
`)

// Reserved is how many seats of room are still reserved on node: what
// placement's expected=N reserved, less the participants who have
// arrived since; 0 when none are (or the reservation expired).
func (r *Redis) Reserved(ctx context.Context, node, room string) (int, error) {
	live, err := r.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: r.prefix + "resv:" + node, ByScore: true,
		Start: strconv.FormatInt(time.Now().UnixMilli(), 10), Stop: "+inf"}).Result()
	if err != nil {
		return 0, unavailable(err)
	}
	for _, m := range live {
		i := strings.LastIndexByte(m, '|')
		if i >= 0 && m[:i] == room {
			n, _ := strconv.Atoi(m[i+1:])
			return n, nil
		}
	}
	return 0, nil
}

// Claim implements Cluster.
func (r *Redis) Claim(ctx context.Context, room, node string, arrival int64) (Placement, error) {
	res, err := claimScript.Run(ctx, r.rdb, nil, r.prefix, room, node, LeaseTTL.Milliseconds(),
		r.knownEpoch(), time.Now().UnixMilli(), SettleTime.Milliseconds(),
		strconv.FormatInt(arrival, 10), NodeTTL.Milliseconds()).StringSlice()
	if err != nil {
		return Placement{}, unavailable(err)
	}
	if err := r.settled(res); err != nil {
		return Placement{}, err
	}
	if len(res) < 2 {
		return Placement{}, unavailable(errors.New("claim script answered oddly"))
	}
	return Placement{Room: room, NodeID: res[0], URL: res[1]}, nil
}

// renewScript extends the node's leases; a room whose key is gone (a
// restarted Redis) is re-claimed, one another node took is left alone.
var renewScript = redis.NewScript(`
local prefix, node, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local lost = 0
for i = 4, #ARGV do
  local k = prefix .. 'room:' .. ARGV[i]
  local owner = redis.call('GET', k)
  if owner == node or not owner then
    redis.call('SET', k, node, 'PX', lease)
  else
    lost = lost + 1
  end
end
return lost
`)

// Renew implements Cluster.
func (r *Redis) Renew(ctx context.Context, node string, rooms []string) error {
	if len(rooms) == 0 {
		return nil
	}
	args := append([]any{r.prefix, node, LeaseTTL.Milliseconds()}, anySlice(rooms)...)
	return unavailable(renewScript.Run(ctx, r.rdb, nil, args...).Err())
}

var releaseScript = redis.NewScript(`
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0
`)

// Release implements Cluster.
func (r *Redis) Release(ctx context.Context, room, node string) error {
	return unavailable(releaseScript.Run(ctx, r.rdb, nil, r.prefix+"room:"+room, node).Err())
}

// knownEpoch is the store's epoch as this node first saw it.
func (r *Redis) knownEpoch() string {
	r.epochMu.Lock()
	defer r.epochMu.Unlock()
	return r.epoch
}

// settled remembers the first epoch a script reported and turns a
// settling answer into ErrUnavailable: the store came back empty
// moments ago, and the room's owner may not have re-claimed it yet.
func (r *Redis) settled(res []string) error {
	if len(res) >= 3 {
		r.epochMu.Lock()
		if r.epoch == "" {
			r.epoch = res[2]
		}
		r.epochMu.Unlock()
	}
	if len(res) >= 4 && res[3] == "settling" {
		return fmt.Errorf("%w: the store restarted empty; rooms are being re-claimed by their nodes (up to %s)", ErrUnavailable, SettleTime)
	}
	return nil
}

// Close closes the connection pool.
func (r *Redis) Close() error { return r.rdb.Close() }

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// SetRedisLogger sends go-redis's own log lines (dial failures while
// Redis is down) to log at debug level instead of stderr; the node logs
// the outage itself, once.
func SetRedisLogger(log *slog.Logger) {
	redis.SetLogger(redisLog{log})
}

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "redis")
}
