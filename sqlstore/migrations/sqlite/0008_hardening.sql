-- Signing keys in the order they were added: the last one signs. Ordering by created_at let a host
-- whose clock was behind rotate in a key that sorted first, so servers kept signing with the old
-- one. Keys stored before keep their created_at order.
ALTER TABLE signing_keys ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET seq = (SELECT COUNT(*) FROM signing_keys k
    WHERE k.created_at < signing_keys.created_at OR (k.created_at = signing_keys.created_at AND k.id <= signing_keys.id));
CREATE UNIQUE INDEX signing_keys_seq ON signing_keys (seq);

-- Download-token answers are aggregated: one row per session, app version and kind of answer
-- (credentials or none), with when it was first and last answered and how often, instead of a
-- row per call (a device asking in a loop wrote thousands of rows a minute). The rows stored
-- before are folded into the first row of their group.
ALTER TABLE token_issuances ADD COLUMN last_issued_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE token_issuances ADD COLUMN issue_count BIGINT NOT NULL DEFAULT 1;
UPDATE token_issuances SET
    issue_count = (SELECT COUNT(*) FROM token_issuances t WHERE t.session_id = token_issuances.session_id
        AND t.app = token_issuances.app AND t.version = token_issuances.version AND t.credentials = token_issuances.credentials),
    last_issued_at = (SELECT MAX(t.issued_at) FROM token_issuances t WHERE t.session_id = token_issuances.session_id
        AND t.app = token_issuances.app AND t.version = token_issuances.version AND t.credentials = token_issuances.credentials);
DELETE FROM token_issuances WHERE id > (SELECT MIN(t.id) FROM token_issuances t WHERE t.session_id = token_issuances.session_id
    AND t.app = token_issuances.app AND t.version = token_issuances.version AND t.credentials = token_issuances.credentials);
DROP INDEX token_issuances_session;
CREATE UNIQUE INDEX token_issuances_answer ON token_issuances (session_id, app, version, credentials);

-- One review per user and product (wire contract §2.10); a second replaces the first. Of the
-- reviews stored before, each user's newest of a product is kept, and the product's rating loses
-- the others (as each was added to it).
CREATE TEMPORARY TABLE review_dups AS
    SELECT r.product_id, COUNT(*) AS n, SUM(r.rating) AS s FROM reviews r
    WHERE r.id < (SELECT MAX(k.id) FROM reviews k WHERE k.product_id = r.product_id AND k.user_id = r.user_id)
    GROUP BY r.product_id;
DELETE FROM reviews WHERE id < (SELECT MAX(k.id) FROM reviews k
    WHERE k.product_id = reviews.product_id AND k.user_id = reviews.user_id);
UPDATE products SET
    rating_count = rating_count - (SELECT d.n FROM review_dups d WHERE d.product_id = products.id),
    rating_sum = rating_sum - (SELECT d.s FROM review_dups d WHERE d.product_id = products.id)
    WHERE id IN (SELECT product_id FROM review_dups);
UPDATE products SET rating_count = 0, rating_sum = 0
    WHERE id IN (SELECT product_id FROM review_dups) AND (rating_count <= 0 OR rating_sum < 0);
UPDATE products SET document = json_set(document,
        '$.average_rating', printf('%.2f', CASE WHEN rating_count > 0 THEN rating_sum / rating_count ELSE 0 END),
        '$.rating_count', rating_count)
    WHERE id IN (SELECT product_id FROM review_dups);
DROP TABLE review_dups;
CREATE UNIQUE INDEX reviews_user ON reviews (product_id, user_id);
