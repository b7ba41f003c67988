-- Signing keys rotate by time (issue 5 "Signing keys that rotate"): each key
-- row says when it starts signing, and its state (pending, current, previous,
-- retired) is derived from that and the clock by every replica alike
-- (gatehouse-oauth key_states.rs). Nothing is stored about the state, so
-- nothing has to be updated when a key takes over: the status column and the
-- one-current-key index go. Existing keys were active from their creation.
ALTER TABLE keys ADD COLUMN activate_at INTEGER NOT NULL DEFAULT 0;
UPDATE keys SET activate_at = created_at;
DROP INDEX keys_one_current;
ALTER TABLE keys DROP COLUMN status;
-- The conditional insert looks for a newer key of one kind and algorithm.
CREATE INDEX keys_activation ON keys (kind, alg, activate_at);
