-- Daily counters never move their day backwards. A prize shard's (day, issued_today) pair counts one campaign-local
-- day (Asia/Shanghai); the day a draw carries is fixed when its message arrives. A late draw of day D reaching a
-- shard that already counts day D+1 (instances whose clocks differ at midnight, a draw that waited on a lock) used
-- to set the shard back to (D, 1), and the next D+1 draw then restarted at 1: the daily cap was reset.
-- Now, for a draw carrying day p: stored day = p → issued_today + 1; stored day < p (or none) → (p, 1); stored day
-- > p → the draw is counted into the newer day, against that day's cap (the conservative choice: it uses up one of
-- the newer day's units, or is out of stock when the newer day has none left). The cap check reads the same count
-- the update increments: CASE WHEN day >= p THEN issued_today ELSE 0 END. greatest() ignores a NULL day.
-- Same signature, contract and locking as take_prize_stock of migration 0004; only the day rule changed.
CREATE OR REPLACE FUNCTION take_prize_stock(p_prize integer, p_shard integer, p_day date) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s smallint;
  busy boolean := false;
BEGIN
  FOR s IN
    SELECT shard FROM prize_stock_shards
    WHERE prize_id = p_prize AND remaining > 0
      AND (daily_share IS NULL OR (CASE WHEN day >= p_day THEN issued_today ELSE 0 END) < daily_share)
    ORDER BY shard = p_shard DESC, shard
  LOOP
    PERFORM 1 FROM prize_stock_shards
    WHERE prize_id = p_prize AND shard = s AND remaining > 0
      AND (daily_share IS NULL OR (CASE WHEN day >= p_day THEN issued_today ELSE 0 END) < daily_share)
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      busy := true; -- held by another transaction (or emptied since the scan): not a verdict on the stock
      CONTINUE;
    END IF;
    UPDATE prize_stock_shards SET remaining = remaining - 1,
      issued_today = CASE WHEN day >= p_day THEN issued_today + 1 ELSE 1 END, day = greatest(day, p_day)
    WHERE prize_id = p_prize AND shard = s;
    RETURN true;
  END LOOP;
  IF busy THEN RETURN NULL; END IF;
  RETURN false;
END $$;
