package dev.weir.bench.kstreams;

/** The Nexmark events, as the topic carries them (bench/nexmark/model.go). */
final class Model {
    private Model() {}

    static final int PERSON = 0, AUCTION = 1, BID = 2;

    /** One record of the topic: exactly one of person, auction and bid is set. */
    static final class Event {
        int type = -1;
        Person person;
        Auction auction;
        Bid bid;

        /** The event's dateTime, Unix ms; Long.MIN_VALUE if none. */
        long time() {
            if (bid != null) return bid.dateTime;
            if (auction != null) return auction.dateTime;
            if (person != null) return person.dateTime;
            return Long.MIN_VALUE;
        }
    }

    static final class Person {
        long id;
        String name, emailAddress, creditCard, city, state;
        long dateTime;
        String extra;
    }

    static final class Auction {
        long id;
        String itemName, description;
        long initialBid, reserve, dateTime, expires, seller, category;
        String extra;
    }

    static final class Bid {
        long auction, bidder, price;
        String channel, url;
        long dateTime;
        String extra;
    }
}
