-- Signing keys in the order they were added: the last one signs. Ordering by created_at let a host
-- whose clock was behind rotate in a key that sorted first, so servers kept signing with the old
-- one. Keys stored before keep their created_at order.
ALTER TABLE signing_keys ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET seq = (SELECT COUNT(*) FROM signing_keys k
    WHERE k.created_at < signing_keys.created_at OR (k.created_at = signing_keys.created_at AND k.id <= signing_keys.id));
CREATE UNIQUE INDEX signing_keys_seq ON signing_keys (seq);
