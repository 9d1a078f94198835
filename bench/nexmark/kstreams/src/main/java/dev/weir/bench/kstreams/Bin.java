package dev.weir.bench.kstreams;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Small big-endian binary layouts for what crosses repartition topics and sits in state:
 * fixed-width longs, strings as a 4-byte length and UTF-8 bytes.
 */
final class Bin {
    private Bin() {}

    static final byte[] EMPTY = new byte[0];

    /** A growable writer; reusable (reset) within one processor. */
    static final class W {
        private byte[] b;
        private int n;

        W(int cap) { b = new byte[cap]; }

        W reset() { n = 0; return this; }

        private void ensure(int more) {
            if (n + more > b.length) b = Arrays.copyOf(b, Math.max(b.length * 2, n + more));
        }

        W u8(int v) { ensure(1); b[n++] = (byte) v; return this; }

        W i32(int v) {
            ensure(4);
            b[n++] = (byte) (v >>> 24); b[n++] = (byte) (v >>> 16); b[n++] = (byte) (v >>> 8); b[n++] = (byte) v;
            return this;
        }

        W i64(long v) {
            ensure(8);
            for (int s = 56; s >= 0; s -= 8) b[n++] = (byte) (v >>> s);
            return this;
        }

        W str(String s) {
            byte[] u = s.getBytes(StandardCharsets.UTF_8);
            i32(u.length);
            return bytes(u, 0, u.length);
        }

        W bytes(byte[] src, int off, int len) {
            ensure(len);
            System.arraycopy(src, off, b, n, len);
            n += len;
            return this;
        }

        byte[] done() { return Arrays.copyOf(b, n); }
    }

    /** A cursor over a byte array. */
    static final class R {
        final byte[] b;
        int p;

        R(byte[] b, int p) { this.b = b; this.p = p; }

        int u8() { return b[p++] & 0xFF; }

        int i32() { int v = Bin.i32(b, p); p += 4; return v; }

        long i64() { long v = Bin.i64(b, p); p += 8; return v; }

        String str() {
            int len = i32();
            String s = new String(b, p, len, StandardCharsets.UTF_8);
            p += len;
            return s;
        }

        boolean more() { return p < b.length; }
    }

    static int i32(byte[] b, int p) {
        return (b[p] & 0xFF) << 24 | (b[p + 1] & 0xFF) << 16 | (b[p + 2] & 0xFF) << 8 | (b[p + 3] & 0xFF);
    }

    static long i64(byte[] b, int p) {
        long v = 0;
        for (int i = 0; i < 8; i++) v = v << 8 | (b[p + i] & 0xFF);
        return v;
    }

    static void put64(byte[] b, int p, long v) {
        for (int i = 7; i >= 0; i--) { b[p + i] = (byte) v; v >>>= 8; }
    }
}
