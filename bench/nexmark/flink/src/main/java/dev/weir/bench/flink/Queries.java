package dev.weir.bench.flink;

import java.util.ArrayList;
import java.util.List;

/**
 * The queries as Flink SQL: nexmark-flink's Kafka table and views (ddl_kafka.sql, ddl_views.sql)
 * and its queries (q*.sql), with Kafka sink tables in place of its blackhole ones. Where the
 * benchmark's contract needs something else, the change is here, in SQL, and README.md lists it.
 *
 * <p>Changes common to every query: the sink tables write times as STRING columns formatted
 * "yyyy-MM-dd HH:mm:ss.SSS" (Flink's JSON format drops trailing zero fraction digits, writing
 * "00:00:10" for "00:00:10.000"), and each sink table has a {@code ts} column written as the Kafka
 * record's timestamp, which the runner measures latency by.
 */
final class Queries {
    private Queries() {}

    /** The statements of one query: DDL to run first, then the INSERT that is the job. */
    static final class Sql {
        final List<String> ddl = new ArrayList<>();
        String insert;
    }

    /** The layout of every time in the output, as Weir writes it. */
    static final String TIME_FORMAT = "yyyy-MM-dd HH:mm:ss.SSS";

    static Sql build(Args a) {
        Sql s = new Sql();
        s.ddl.add(sourceTable(a));
        s.ddl.addAll(VIEWS);
        String sink = sinkOptions(a);
        switch (a.query) {
            case "q0":
            case "q1":
                s.ddl.add(
                        "CREATE TABLE nexmark_"
                                + a.query
                                + " (\n"
                                + "  auction BIGINT,\n"
                                + "  bidder BIGINT,\n"
                                + "  price BIGINT,\n"
                                + "  channel VARCHAR,\n"
                                + "  url VARCHAR,\n"
                                + "  `dateTime` VARCHAR,\n"
                                + "  extra VARCHAR,\n"
                                + TS_COLUMN
                                + ") WITH ("
                                + sink
                                + ")");
                // q1: nexmark-flink writes 0.908 * price as DECIMAL(23, 3); the contract wants
                // its integer part, as a BIGINT.
                String price = a.query.equals("q0") ? "price" : "CAST(0.908 * price AS BIGINT)";
                s.insert =
                        "INSERT INTO nexmark_"
                                + a.query
                                + "\n"
                                + "SELECT auction, bidder, "
                                + price
                                + ", channel, url, "
                                + fmt("`dateTime`")
                                + ", extra, "
                                + ltz("`dateTime`")
                                + "\n"
                                + "FROM bid";
                break;
            case "q2":
                s.ddl.add(
                        "CREATE TABLE nexmark_q2 (\n"
                                + "  auction BIGINT,\n"
                                + "  price BIGINT,\n"
                                + TS_COLUMN
                                + ") WITH ("
                                + sink
                                + ")");
                s.insert =
                        "INSERT INTO nexmark_q2\n"
                                + "SELECT auction, price, "
                                + ltz("`dateTime`")
                                + " FROM bid WHERE MOD(auction, 123) = 0";
                break;
            case "q3":
                s.ddl.add(
                        "CREATE TABLE nexmark_q3 (\n"
                                + "  name VARCHAR,\n"
                                + "  city VARCHAR,\n"
                                + "  state VARCHAR,\n"
                                + "  id BIGINT,\n"
                                + TS_COLUMN
                                + ") WITH ("
                                + sink
                                + ")");
                // The record timestamp is the later of the two sides' dateTime.
                s.insert =
                        "INSERT INTO nexmark_q3\n"
                                + "SELECT\n"
                                + "    P.name, P.city, P.state, A.id,\n"
                                + "    "
                                + ltz("GREATEST(A.`dateTime`, P.`dateTime`)")
                                + "\n"
                                + "FROM\n"
                                + "    auction AS A INNER JOIN person AS P on A.seller = P.id\n"
                                + "WHERE\n"
                                + "    A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR"
                                + " P.state = 'CA')";
                break;
            case "q5":
                s.ddl.add(
                        "CREATE TABLE nexmark_q5 (\n"
                                + "  auction BIGINT,\n"
                                + "  num BIGINT,\n"
                                + TS_COLUMN
                                + ") WITH ("
                                + sink
                                + ")");
                // As nexmark-flink's, with the window end carried out for the record timestamp.
                s.insert =
                        "INSERT INTO nexmark_q5\n"
                                + "SELECT AuctionBids.auction, AuctionBids.num, "
                                + ltz("AuctionBids.endtime - INTERVAL '0.001' SECOND")
                                + "\n"
                                + " FROM (\n"
                                + "   SELECT\n"
                                + "     auction,\n"
                                + "     count(*) AS num,\n"
                                + "     window_start AS starttime,\n"
                                + "     window_end AS endtime\n"
                                + "     FROM TABLE(\n"
                                + "             HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2'"
                                + " SECOND, INTERVAL '10' SECOND))\n"
                                + "     GROUP BY auction, window_start, window_end\n"
                                + " ) AS AuctionBids\n"
                                + " JOIN (\n"
                                + "   SELECT\n"
                                + "     max(CountBids.num) AS maxn,\n"
                                + "     CountBids.starttime,\n"
                                + "     CountBids.endtime\n"
                                + "   FROM (\n"
                                + "     SELECT\n"
                                + "       count(*) AS num,\n"
                                + "       window_start AS starttime,\n"
                                + "       window_end AS endtime\n"
                                + "     FROM TABLE(\n"
                                + "                HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL"
                                + " '2' SECOND, INTERVAL '10' SECOND))\n"
                                + "     GROUP BY auction, window_start, window_end\n"
                                + "     ) AS CountBids\n"
                                + "   GROUP BY CountBids.starttime, CountBids.endtime\n"
                                + " ) AS MaxBids\n"
                                + " ON AuctionBids.starttime = MaxBids.starttime AND\n"
                                + "    AuctionBids.endtime = MaxBids.endtime AND\n"
                                + "    AuctionBids.num >= MaxBids.maxn";
                break;
            case "q7":
                s.ddl.add(
                        "CREATE TABLE nexmark_q7 (\n"
                                + "  auction BIGINT,\n"
                                + "  bidder BIGINT,\n"
                                + "  price BIGINT,\n"
                                + "  `dateTime` VARCHAR,\n"
                                + "  extra VARCHAR,\n"
                                + TS_COLUMN
                                + ") WITH ("
                                + sink
                                + ")");
                // nexmark-flink joins every bid with its window's highest price in a regular join
                // bounded by "B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND
                // B1.dateTime". A regular join keeps every bid in state for good (nexmark-flink
                // runs on RocksDB, on disk; here state is on the heap, and q7 ran out of a 1 GiB
                // heap on 1.6M bids), and the bound counts a bid at a window's end in two windows.
                // This is the same query as a window join, as Flink's documentation writes one
                // after a window aggregation: a bid counts in its own window [start, end) only,
                // and both sides' state is dropped when the watermark passes the window's end,
                // as Weir's own q7 does.
                s.insert =
                        "INSERT INTO nexmark_q7\n"
                                + "SELECT B.auction, B.bidder, B.price, "
                                + fmt("B.`dateTime`")
                                + ", B.extra, "
                                + ltz("B1.window_end - INTERVAL '0.001' SECOND")
                                + "\n"
                                + "FROM (\n"
                                + "  SELECT * FROM TABLE(\n"
                                + "          TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL"
                                + " '10' SECOND))\n"
                                + ") B\n"
                                + "JOIN (\n"
                                + "  SELECT MAX(price) AS maxprice, window_start, window_end\n"
                                + "  FROM TABLE(\n"
                                + "          TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL"
                                + " '10' SECOND))\n"
                                + "  GROUP BY window_start, window_end\n"
                                + ") B1\n"
                                + "ON B.window_start = B1.window_start AND B.window_end ="
                                + " B1.window_end\n"
                                + "  AND B.price = B1.maxprice";
                break;
            case "q8":
                s.ddl.add(
                        "CREATE TABLE nexmark_q8 (\n"
                                + "  id BIGINT,\n"
                                + "  name VARCHAR,\n"
                                + "  stime VARCHAR,\n"
                                + TS_COLUMN
                                + ") WITH ("
                                + sink
                                + ")");
                s.insert =
                        "INSERT INTO nexmark_q8\n"
                                + "SELECT P.id, P.name, "
                                + fmt("P.starttime")
                                + ", "
                                + ltz("P.endtime - INTERVAL '0.001' SECOND")
                                + "\n"
                                + "FROM (\n"
                                + "  SELECT id, name,\n"
                                + "        window_start AS starttime,\n"
                                + "        window_end AS endtime\n"
                                + "  FROM TABLE(\n"
                                + "            TUMBLE(TABLE person, DESCRIPTOR(`dateTime`),"
                                + " INTERVAL '10' SECOND))\n"
                                + "  GROUP BY id, name, window_start, window_end\n"
                                + ") P\n"
                                + "JOIN (\n"
                                + "  SELECT seller,\n"
                                + "        window_start AS starttime,\n"
                                + "        window_end AS endtime\n"
                                + "  FROM TABLE(\n"
                                + "        TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL"
                                + " '10' SECOND))\n"
                                + "  GROUP BY seller, window_start, window_end\n"
                                + ") A\n"
                                + "ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime"
                                + " = A.endtime";
                break;
            case "q11":
                s.ddl.add(
                        "CREATE TABLE nexmark_q11 (\n"
                                + "  bidder BIGINT,\n"
                                + "  bid_count BIGINT,\n"
                                + "  starttime VARCHAR,\n"
                                + "  endtime VARCHAR,\n"
                                + TS_COLUMN
                                + ") WITH ("
                                + sink
                                + ")");
                s.insert =
                        "INSERT INTO nexmark_q11\n"
                                + "SELECT bidder, bid_count, "
                                + fmt("starttime")
                                + ", "
                                + fmt("endtime")
                                + ", "
                                + ltz("endtime - INTERVAL '0.001' SECOND")
                                + "\n"
                                + "FROM (\n"
                                + "  SELECT\n"
                                + "      B.bidder,\n"
                                + "      count(*) as bid_count,\n"
                                + "      SESSION_START(B.`dateTime`, INTERVAL '10' SECOND) as"
                                + " starttime,\n"
                                + "      SESSION_END(B.`dateTime`, INTERVAL '10' SECOND) as"
                                + " endtime\n"
                                + "  FROM bid B\n"
                                + "  GROUP BY B.bidder, SESSION(B.`dateTime`, INTERVAL '10'"
                                + " SECOND)\n"
                                + ")";
                break;
            case "q12":
                s.ddl.add(
                        "CREATE TABLE nexmark_q12 (\n"
                                + "  bidder BIGINT,\n"
                                + "  bid_count BIGINT,\n"
                                + "  starttime VARCHAR,\n"
                                + "  endtime VARCHAR,\n"
                                + TS_COLUMN
                                + ") WITH ("
                                + sink
                                + ")");
                s.ddl.add("CREATE VIEW B AS SELECT *, PROCTIME() as p_time FROM bid");
                s.insert =
                        "INSERT INTO nexmark_q12\n"
                                + "SELECT bidder, bid_count, "
                                + fmt("starttime")
                                + ", "
                                + fmt("endtime")
                                + ", "
                                + ltz("endtime - INTERVAL '0.001' SECOND")
                                + "\n"
                                + "FROM (\n"
                                + "  SELECT\n"
                                + "      bidder,\n"
                                + "      count(*) as bid_count,\n"
                                + "      window_start AS starttime,\n"
                                + "      window_end AS endtime\n"
                                + "  FROM TABLE(\n"
                                + "          TUMBLE(TABLE B, DESCRIPTOR(p_time), INTERVAL '10'"
                                + " SECOND))\n"
                                + "  GROUP BY bidder, window_start, window_end\n"
                                + ")";
                break;
            default:
                throw new IllegalArgumentException("unknown query " + a.query);
        }
        return s;
    }

    /** The sink tables' record-timestamp column: not in the JSON value, the Kafka timestamp. */
    static final String TS_COLUMN =
            blackhole()
                    ? "  ts TIMESTAMP_LTZ(3)\n"
                    : "  ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'\n";

    /** A TIMESTAMP(3) in UTC as the "yyyy-MM-dd HH:mm:ss.SSS" string Weir writes. */
    static String fmt(String expr) {
        return "DATE_FORMAT(" + expr + ", '" + TIME_FORMAT + "')";
    }

    /** A TIMESTAMP(3) in UTC (the session time zone) as the instant it is. */
    static String ltz(String expr) {
        return "CAST(" + expr + " AS TIMESTAMP_LTZ(3))";
    }

    /** nexmark-flink's Kafka table (ddl_kafka.sql), reading the topic as this benchmark needs. */
    static String sourceTable(Args a) {
        return "CREATE TABLE kafka (\n"
                + "    event_type int,\n"
                + "    person ROW<\n"
                + "        id  BIGINT,\n"
                + "        name  VARCHAR,\n"
                + "        emailAddress  VARCHAR,\n"
                + "        creditCard  VARCHAR,\n"
                + "        city  VARCHAR,\n"
                + "        state  VARCHAR,\n"
                + "        `dateTime` TIMESTAMP(3),\n"
                + "        extra  VARCHAR>,\n"
                + "    auction ROW<\n"
                + "        id  BIGINT,\n"
                + "        itemName  VARCHAR,\n"
                + "        description  VARCHAR,\n"
                + "        initialBid  BIGINT,\n"
                + "        reserve  BIGINT,\n"
                + "        `dateTime`  TIMESTAMP(3),\n"
                + "        expires  TIMESTAMP(3),\n"
                + "        seller  BIGINT,\n"
                + "        category  BIGINT,\n"
                + "        extra  VARCHAR>,\n"
                + "    bid ROW<\n"
                + "        auction  BIGINT,\n"
                + "        bidder  BIGINT,\n"
                + "        price  BIGINT,\n"
                + "        channel  VARCHAR,\n"
                + "        url  VARCHAR,\n"
                + "        `dateTime`  TIMESTAMP(3),\n"
                + "        extra  VARCHAR>,\n"
                + "    `dateTime` AS\n"
                + "        CASE\n"
                + "            WHEN event_type = 0 THEN person.`dateTime`\n"
                + "            WHEN event_type = 1 THEN auction.`dateTime`\n"
                + "            ELSE bid.`dateTime`\n"
                + "        END,\n"
                + "    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND\n"
                + ") WITH (\n"
                + "    'connector' = 'kafka',\n"
                + "    'topic' = "
                + lit(a.input)
                + ",\n"
                + "    'properties.bootstrap.servers' = "
                + lit(a.brokers)
                + ",\n"
                + "    'properties.group.id' = "
                + lit(a.group)
                + ",\n"
                + "    'scan.startup.mode' = 'earliest-offset',\n"
                // Offsets are committed to the group when a checkpoint completes (the default
                // with a group id); the runner watches them to know the input is processed.
                + "    'properties.commit.offsets.on.checkpoint' = 'true',\n"
                + "    'properties.isolation.level' = 'read_committed',\n"
                + "    'format' = 'json',\n"
                + "    'json.timestamp-format.standard' = 'SQL'"
                + extraOptions("NEXMARK_FLINK_SOURCE_OPTS")
                + "\n)";
    }

    /**
     * For experiments only: table options from the environment variable named, "key=value;...",
     * as ",\n 'key' = 'value'" lines to append to a WITH clause.
     */
    static String extraOptions(String env) {
        StringBuilder b = new StringBuilder();
        for (String[] kv : Main.pairs(System.getenv(env))) {
            b.append(",\n    ").append(lit(kv[0])).append(" = ").append(lit(kv[1]));
        }
        return b.toString();
    }

    /**
     * For experiments only: with NEXMARK_FLINK_BLACKHOLE set, every sink table discards its rows
     * (Flink's blackhole connector), to tell the cost of the Kafka sink from the rest. The
     * runner then sees no results, only the source's committed offsets.
     */
    static boolean blackhole() {
        return System.getenv("NEXMARK_FLINK_BLACKHOLE") != null;
    }

    /** nexmark-flink's views (ddl_views.sql). */
    static final List<String> VIEWS =
            List.of(
                    "CREATE VIEW person AS\n"
                            + "SELECT\n"
                            + "    person.id,\n"
                            + "    person.name,\n"
                            + "    person.emailAddress,\n"
                            + "    person.creditCard,\n"
                            + "    person.city,\n"
                            + "    person.state,\n"
                            + "    `dateTime`,\n"
                            + "    person.extra\n"
                            + "FROM kafka WHERE event_type = 0",
                    "CREATE VIEW auction AS\n"
                            + "SELECT\n"
                            + "    auction.id,\n"
                            + "    auction.itemName,\n"
                            + "    auction.description,\n"
                            + "    auction.initialBid,\n"
                            + "    auction.reserve,\n"
                            + "    `dateTime`,\n"
                            + "    auction.expires,\n"
                            + "    auction.seller,\n"
                            + "    auction.category,\n"
                            + "    auction.extra\n"
                            + "FROM kafka WHERE event_type = 1",
                    "CREATE VIEW bid AS\n"
                            + "SELECT\n"
                            + "    bid.auction,\n"
                            + "    bid.bidder,\n"
                            + "    bid.price,\n"
                            + "    bid.channel,\n"
                            + "    bid.url,\n"
                            + "    `dateTime`,\n"
                            + "    bid.extra\n"
                            + "FROM kafka WHERE event_type = 2");

    /** The WITH options of every sink table: the output topic, JSON, the delivery guarantee. */
    static String sinkOptions(Args a) {
        if (blackhole()) {
            return "'connector' = 'blackhole'";
        }
        StringBuilder b = new StringBuilder();
        b.append("\n    'connector' = 'kafka',\n");
        b.append("    'topic' = ").append(lit(a.output)).append(",\n");
        b.append("    'properties.bootstrap.servers' = ").append(lit(a.brokers)).append(",\n");
        b.append("    'format' = 'json',\n");
        b.append("    'json.timestamp-format.standard' = 'SQL',\n");
        // The producer batching every engine gets alike (Args); the Java client's own defaults
        // are 16 KB batches, 5 ms linger and no compression.
        b.append("    'properties.batch.size' = ").append(lit("" + a.producerBatchBytes)).append(",\n");
        b.append("    'properties.linger.ms' = ").append(lit("" + a.producerLingerMs)).append(",\n");
        b.append("    'properties.compression.type' = ").append(lit(a.producerCompression)).append(",\n");
        if (a.exactlyOnce) {
            b.append("    'sink.delivery-guarantee' = 'exactly-once',\n");
            b.append("    'sink.transactional-id-prefix' = ")
                    .append(lit(a.group + "-" + a.query))
                    .append(",\n");
            // POOLING reuses a few transactional ids, and their producers, from checkpoint to
            // checkpoint. The default, INCREMENTING, names every checkpoint's transaction anew:
            // a new KafkaProducer and a blocking initTransactions() on the task thread at every
            // checkpoint, which at a 100 ms interval was most of the task's time.
            b.append("    'sink.transaction-naming-strategy' = 'POOLING',\n");
            // Well under the broker's transaction.max.timeout.ms (15 min by default).
            b.append("    'properties.transaction.timeout.ms' = '60000'");
        } else {
            b.append("    'sink.delivery-guarantee' = 'at-least-once'");
        }
        b.append(extraOptions("NEXMARK_FLINK_SINK_OPTS")).append("\n");
        return b.toString();
    }

    /** s as a SQL string literal. */
    static String lit(String s) {
        return "'" + s.replace("'", "''") + "'";
    }
}
