package e2e

import "testing"

// murmur2 is Kafka's Utils.murmur2, written here from the Java source
// independently of the engine, so the tests check Weir's partitioning
// against Java's rather than against itself.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[length&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// javaPartition is the Java client's default partition for a keyed record:
// toPositive(murmur2(key)) % numPartitions.
func javaPartition(key []byte, partitions int32) int32 {
	return (murmur2(key) & 0x7fffffff) % partitions
}

// Vectors printed by the Java client itself (kafka-clients 4.4.0,
// Utils.murmur2 and Utils.toPositive(...) % 4), run against the jars
// scripts/kafka.sh caches.
func TestMurmur2MatchesJava(t *testing.T) {
	for _, c := range []struct {
		key       string
		hash      int32
		partition int32
	}{
		{"0", 971027396, 0}, {"1", -1993445489, 3}, {"128", -326012175, 1},
		{"2187", -1508407203, 1}, {"16384", -325739742, 2}, {"78125", -1654490814, 2},
		{"279936", 1462227128, 0}, {"823543", -2014198330, 2}, {"21", -973932308, 0},
		{"foobar", -790332482, 2}, {"a-little-bit-long-string", -985981536, 0},
		{"abc", 479470107, 3}, {"user-0", 637506763, 3}, {"user-42", 1459644460, 0},
		{"user-999", -1467781202, 2},
	} {
		if got := murmur2([]byte(c.key)); got != c.hash {
			t.Errorf("murmur2(%q) = %d, want %d", c.key, got, c.hash)
		}
		if got := javaPartition([]byte(c.key), 4); got != c.partition {
			t.Errorf("partition of %q among 4 = %d, want %d", c.key, got, c.partition)
		}
	}
}
