-- Room on each page for the stored reply, so that storing it is a HOT update.
-- A dedup key is inserted small (key, status, time: about 100 bytes) and updated once, milliseconds later, with the
-- reply WeChat was sent (a passive reply is 300–500 bytes of XML): the row grows four- to fivefold. At fillfactor 80
-- (0004) a page took about 60 new keys and had room for the replies of a dozen; the other updates left the page —
-- a new row version elsewhere, a new primary-key entry and a dead version to prune. Measured in a
-- `npm run bench:redeem` database: 34 % of reply stores were HOT. At 20 a page takes about 16 keys, and their
-- replies fit beside them (97 % HOT). The table grows by about a quarter for replied keys (the moved versions
-- filled new pages anyway at 80), and keys answered with no reply ('success') leave their room unused for the
-- day they are kept.
ALTER TABLE "webhook_dedup" SET (fillfactor = 20);
