package state

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// u64 is the benchmarks' value codec: fixed-width, so that the numbers are
// the state layer's and not encoding/json's. Encode allocates, as codecs
// do.
type u64 struct{}

func (u64) Encode(v uint64) ([]byte, error) { return binary.BigEndian.AppendUint64(nil, v), nil }
func (u64) Decode(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("u64: %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// checkpointEvery is how many events the benchmarks process between two
// checkpoints (Flush + CommitPending), as a sub-second checkpoint interval
// would at some 100k events per second per task.
const checkpointEvery = 10_000

// BenchmarkValueGetSet measures the per-event cost of the commonest keyed
// state access, a Value read-modify-write (a per-key counter), with a
// checkpoint every checkpointEvery events, against the ceiling of a plain
// Go map[string][]byte doing the same get, decode, encode and put. The
// "state" sub-benchmark reports x-map, its ns/op over the map's.
//
//	hot=100      100 keys: a key's first access after a checkpoint reads
//	             Pebble, the rest of the interval's hit the dirty cache;
//	             a checkpoint writes 100 keys
//	distinct=1M  1M keys already in Pebble, visited round robin: every
//	             access misses the cache and reads Pebble, and every
//	             checkpoint writes checkpointEvery keys
func BenchmarkValueGetSet(b *testing.B) {
	for _, tc := range []struct {
		name string
		keys int
	}{
		{"hot=100", 100},
		{"distinct=1M", 1_000_000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			keys := make([][]byte, tc.keys)
			strKeys := make([]string, tc.keys)
			for i := range keys {
				strKeys[i] = "user-" + strconv.Itoa(i)
				keys[i] = []byte(strKeys[i])
			}

			var mapNsPerOp float64
			b.Run("map", func(b *testing.B) {
				m := make(map[string][]byte, len(strKeys))
				for _, k := range strKeys {
					m[k], _ = u64{}.Encode(0)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					k := strKeys[i%len(strKeys)]
					n, err := u64{}.Decode(m[k])
					if err != nil {
						b.Fatal(err)
					}
					m[k], _ = u64{}.Encode(n + 1)
				}
				mapNsPerOp = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})

			s, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			r := NewRegistry("bench")
			count := NewValue(r, "count", u64{})
			sc := &scope{ts: s.Task(TaskID{Partition: 1}), now: time.Unix(0, 0)}
			// Load every key into Pebble, as a restore would, with the
			// bytes the handle writes for 0.
			sc.key = keys[0]
			if err := count.Set(sc, 0); err != nil {
				b.Fatal(err)
			}
			zero := sc.ts.Flush()[0].Value
			sc.ts.AbortPending()
			for _, k := range keys {
				sc.key = k
				if err := sc.ts.Restore(count.d.stateKey(sc.ts, sc), zero, false); err != nil {
					b.Fatal(err)
				}
			}
			if err := sc.ts.FinishRestore(0, nil); err != nil {
				b.Fatal(err)
			}

			b.Run("state", func(b *testing.B) {
				checkpoint := int64(0)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					sc.key = keys[i%len(keys)]
					n, _, err := count.Get(sc)
					if err != nil {
						b.Fatal(err)
					}
					if err := count.Set(sc, n+1); err != nil {
						b.Fatal(err)
					}
					if i%checkpointEvery == checkpointEvery-1 {
						sc.ts.Flush()
						checkpoint++
						if err := sc.ts.CommitPending(checkpoint, nil); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				if mapNsPerOp > 0 {
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/mapNsPerOp, "x-map")
				}
				sc.ts.AbortPending()
			})
		})
	}
}
