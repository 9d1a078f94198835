package dev.weir.bench.kstreams;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import dev.weir.bench.kstreams.Model.Auction;
import dev.weir.bench.kstreams.Model.Bid;
import dev.weir.bench.kstreams.Model.Event;
import dev.weir.bench.kstreams.Model.Person;

import java.io.IOException;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Arrays;

/**
 * The topic's JSON: events read with Jackson's streaming parser (one pass, no tree, no
 * reflection), results written by hand into a reusable buffer. Times are
 * "yyyy-MM-dd HH:mm:ss.SSS" in UTC, parsed and formatted without java.time on the hot path.
 */
final class Json {
    private Json() {}

    static final JsonFactory FACTORY = JsonFactory.builder().build();

    // ---- reading ----------------------------------------------------------------------

    static Event parseEvent(byte[] b) throws IOException {
        Event e = new Event();
        try (JsonParser p = FACTORY.createParser(b)) {
            expect(p.nextToken(), JsonToken.START_OBJECT);
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String f = p.currentName();
                JsonToken t = p.nextToken();
                switch (f) {
                    case "event_type": e.type = p.getIntValue(); break;
                    case "person": if (t != JsonToken.VALUE_NULL) e.person = person(p); break;
                    case "auction": if (t != JsonToken.VALUE_NULL) e.auction = auction(p); break;
                    case "bid": if (t != JsonToken.VALUE_NULL) e.bid = bid(p); break;
                    default: p.skipChildren();
                }
            }
        }
        boolean ok;
        switch (e.type) {
            case Model.PERSON: ok = e.person != null && e.auction == null && e.bid == null; break;
            case Model.AUCTION: ok = e.person == null && e.auction != null && e.bid == null; break;
            case Model.BID: ok = e.person == null && e.auction == null && e.bid != null; break;
            default: ok = false;
        }
        if (!ok) throw new IOException("event_type " + e.type + " does not match the event's members");
        return e;
    }

    private static void expect(JsonToken got, JsonToken want) throws IOException {
        if (got != want) throw new IOException("want " + want + ", got " + got);
    }

    private static Person person(JsonParser p) throws IOException {
        expect(p.currentToken(), JsonToken.START_OBJECT);
        Person x = new Person();
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String f = p.currentName();
            p.nextToken();
            switch (f) {
                case "id": x.id = p.getLongValue(); break;
                case "name": x.name = p.getText(); break;
                case "emailAddress": x.emailAddress = p.getText(); break;
                case "creditCard": x.creditCard = p.getText(); break;
                case "city": x.city = p.getText(); break;
                case "state": x.state = p.getText(); break;
                case "dateTime": x.dateTime = time(p); break;
                case "extra": x.extra = p.getText(); break;
                default: p.skipChildren();
            }
        }
        return x;
    }

    private static Auction auction(JsonParser p) throws IOException {
        expect(p.currentToken(), JsonToken.START_OBJECT);
        Auction x = new Auction();
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String f = p.currentName();
            p.nextToken();
            switch (f) {
                case "id": x.id = p.getLongValue(); break;
                case "itemName": x.itemName = p.getText(); break;
                case "description": x.description = p.getText(); break;
                case "initialBid": x.initialBid = p.getLongValue(); break;
                case "reserve": x.reserve = p.getLongValue(); break;
                case "dateTime": x.dateTime = time(p); break;
                case "expires": x.expires = time(p); break;
                case "seller": x.seller = p.getLongValue(); break;
                case "category": x.category = p.getLongValue(); break;
                case "extra": x.extra = p.getText(); break;
                default: p.skipChildren();
            }
        }
        return x;
    }

    private static Bid bid(JsonParser p) throws IOException {
        expect(p.currentToken(), JsonToken.START_OBJECT);
        Bid x = new Bid();
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String f = p.currentName();
            p.nextToken();
            switch (f) {
                case "auction": x.auction = p.getLongValue(); break;
                case "bidder": x.bidder = p.getLongValue(); break;
                case "price": x.price = p.getLongValue(); break;
                case "channel": x.channel = p.getText(); break;
                case "url": x.url = p.getText(); break;
                case "dateTime": x.dateTime = time(p); break;
                case "extra": x.extra = p.getText(); break;
                default: p.skipChildren();
            }
        }
        return x;
    }

    private static long time(JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.VALUE_STRING) throw new IOException("dateTime: want a string");
        return parseTime(p.getTextCharacters(), p.getTextOffset(), p.getTextLength());
    }

    /** Parses "yyyy-MM-dd HH:mm:ss.SSS" (UTC) to Unix ms; other ISO-8601 shapes via java.time. */
    static long parseTime(char[] c, int off, int len) throws IOException {
        if (len == 23 && c[off + 4] == '-' && c[off + 7] == '-' && (c[off + 10] == ' ' || c[off + 10] == 'T')
                && c[off + 13] == ':' && c[off + 16] == ':' && c[off + 19] == '.') {
            int y = digits(c, off, 4), mo = digits(c, off + 5, 2), d = digits(c, off + 8, 2);
            int h = digits(c, off + 11, 2), mi = digits(c, off + 14, 2), s = digits(c, off + 17, 2);
            int ms = digits(c, off + 20, 3);
            if (y >= 0 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h >= 0 && h < 24 && mi >= 0 && mi < 60
                    && s >= 0 && s < 60 && ms >= 0) {
                return ((daysFromCivil(y, mo, d) * 24 + h) * 60 + mi) * 60_000L + s * 1000L + ms;
            }
        }
        String str = new String(c, off, len);
        try {
            String iso = str.replace(' ', 'T');
            if (iso.endsWith("Z")) iso = iso.substring(0, iso.length() - 1);
            return LocalDateTime.parse(iso, DateTimeFormatter.ISO_LOCAL_DATE_TIME).toInstant(ZoneOffset.UTC).toEpochMilli();
        } catch (RuntimeException ex) {
            throw new IOException("bad dateTime " + str, ex);
        }
    }

    private static int digits(char[] c, int off, int n) {
        int v = 0;
        for (int i = 0; i < n; i++) {
            int d = c[off + i] - '0';
            if (d < 0 || d > 9) return -1;
            v = v * 10 + d;
        }
        return v;
    }

    /** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
    static long daysFromCivil(long y, int m, int d) {
        y -= m <= 2 ? 1 : 0;
        long era = Math.floorDiv(y, 400);
        long yoe = y - era * 400;
        long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
    }

    // ---- writing ----------------------------------------------------------------------

    /** A reusable JSON object writer; one per processor instance (not thread-safe). */
    static final class Out {
        private byte[] buf = new byte[256];
        private int n;
        private boolean first;

        Out begin() {
            n = 0;
            first = true;
            put((byte) '{');
            return this;
        }

        byte[] end() {
            put((byte) '}');
            return Arrays.copyOf(buf, n);
        }

        private void ensure(int more) {
            if (n + more > buf.length) buf = Arrays.copyOf(buf, Math.max(buf.length * 2, n + more));
        }

        private void put(byte b) {
            ensure(1);
            buf[n++] = b;
        }

        private void name(String k) {
            ensure(k.length() + 4);
            if (!first) buf[n++] = ',';
            first = false;
            buf[n++] = '"';
            for (int i = 0; i < k.length(); i++) buf[n++] = (byte) k.charAt(i);
            buf[n++] = '"';
            buf[n++] = ':';
        }

        Out num(String k, long v) {
            name(k);
            ensure(20);
            if (v == Long.MIN_VALUE) {
                for (byte b : "-9223372036854775808".getBytes()) buf[n++] = b;
                return this;
            }
            if (v < 0) {
                buf[n++] = '-';
                v = -v;
            }
            int start = n;
            do {
                buf[n++] = (byte) ('0' + (v % 10));
                v /= 10;
            } while (v != 0);
            for (int i = start, j = n - 1; i < j; i++, j--) {
                byte t = buf[i];
                buf[i] = buf[j];
                buf[j] = t;
            }
            return this;
        }

        Out time(String k, long ms) {
            name(k);
            ensure(25);
            long days = Math.floorDiv(ms, 86_400_000L);
            int inDay = (int) Math.floorMod(ms, 86_400_000L);
            // civil from days (Hinnant)
            long z = days + 719468;
            long era = Math.floorDiv(z, 146097);
            long doe = z - era * 146097;
            long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
            long y = yoe + era * 400;
            long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            long mp = (5 * doy + 2) / 153;
            int d = (int) (doy - (153 * mp + 2) / 5 + 1);
            int m = (int) (mp < 10 ? mp + 3 : mp - 9);
            if (m <= 2) y++;
            buf[n++] = '"';
            if (y < 0 || y > 9999) throw new IllegalArgumentException("year out of range: " + y);
            pad((int) y, 4);
            buf[n++] = '-';
            pad(m, 2);
            buf[n++] = '-';
            pad(d, 2);
            buf[n++] = ' ';
            pad(inDay / 3_600_000, 2);
            buf[n++] = ':';
            pad(inDay / 60_000 % 60, 2);
            buf[n++] = ':';
            pad(inDay / 1000 % 60, 2);
            buf[n++] = '.';
            pad(inDay % 1000, 3);
            buf[n++] = '"';
            return this;
        }

        private void pad(int v, int width) {
            for (int i = n + width - 1; i >= n; i--) {
                buf[i] = (byte) ('0' + v % 10);
                v /= 10;
            }
            n += width;
        }

        Out str(String k, String s) {
            name(k);
            if (s == null) {
                ensure(4);
                buf[n++] = 'n'; buf[n++] = 'u'; buf[n++] = 'l'; buf[n++] = 'l';
                return this;
            }
            ensure(s.length() + 2);
            buf[n++] = '"';
            for (int i = 0; i < s.length(); i++) {
                char ch = s.charAt(i);
                if (ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\') {
                    ensure(2);
                    buf[n++] = (byte) ch;
                } else if (ch == '"' || ch == '\\') {
                    ensure(3);
                    buf[n++] = '\\';
                    buf[n++] = (byte) ch;
                } else if (ch < 0x20) {
                    ensure(7);
                    switch (ch) {
                        case '\n': buf[n++] = '\\'; buf[n++] = 'n'; break;
                        case '\r': buf[n++] = '\\'; buf[n++] = 'r'; break;
                        case '\t': buf[n++] = '\\'; buf[n++] = 't'; break;
                        case '\b': buf[n++] = '\\'; buf[n++] = 'b'; break;
                        case '\f': buf[n++] = '\\'; buf[n++] = 'f'; break;
                        default:
                            buf[n++] = '\\'; buf[n++] = 'u'; buf[n++] = '0'; buf[n++] = '0';
                            buf[n++] = (byte) "0123456789abcdef".charAt(ch >> 4);
                            buf[n++] = (byte) "0123456789abcdef".charAt(ch & 15);
                    }
                } else {
                    // Non-ASCII: UTF-8, surrogate pairs included.
                    int cp = ch;
                    if (Character.isHighSurrogate(ch) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                        cp = Character.toCodePoint(ch, s.charAt(++i));
                    } else if (Character.isSurrogate(ch)) {
                        cp = 0xFFFD;
                    }
                    ensure(5);
                    if (cp < 0x800) {
                        buf[n++] = (byte) (0xC0 | (cp >> 6));
                        buf[n++] = (byte) (0x80 | (cp & 0x3F));
                    } else if (cp < 0x10000) {
                        buf[n++] = (byte) (0xE0 | (cp >> 12));
                        buf[n++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
                        buf[n++] = (byte) (0x80 | (cp & 0x3F));
                    } else {
                        buf[n++] = (byte) (0xF0 | (cp >> 18));
                        buf[n++] = (byte) (0x80 | ((cp >> 12) & 0x3F));
                        buf[n++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
                        buf[n++] = (byte) (0x80 | (cp & 0x3F));
                    }
                }
            }
            ensure(1);
            buf[n++] = '"';
            return this;
        }
    }
}
