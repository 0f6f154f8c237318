"""Tamper-evident audit log: append-only JSONL, chained, anchored by a checkpoint.

Every record carries `prev`, the hash of the record before it (the first one chains to
GENESIS), and `hash`, the SHA-256 of its own content without `hash` and `mac`: an edit,
deletion, insertion or reordering breaks the chain. A chain alone cannot show that its
last records were cut off, or that every hash was recomputed after a rewrite, so a
checkpoint beside the log (`audit.jsonl.head`: record count, last hash, byte size)
anchors it; verify compares the two. With a key (a 0600 file named by
VFLEET_AUDIT_KEY_FILE) every record carries `mac` = HMAC-SHA256(key, hash) and the
checkpoint is MACed too, so rewriting the log and its checkpoint consistently needs the key.

Appends take an exclusive flock on the log, check that the log still matches its
checkpoint (never launder a truncation into a fresh checkpoint), write and fsync the
records, then replace the checkpoint atomically, all under the lock: concurrent vfleet
processes keep one chain. An append is all or nothing, and any failure is an
AuditUnavailable the operations service turns into "refuse before sending".
Secrets never reach the log: records hold names, verbs and messages.
"""

from vfleet.core.audit.chain import (
    ENV_VAR,
    GENESIS,
    KEY_ENV_VAR,
    default_path,
    digest,
    head_path,
    key_file_from_env,
    load_key,
    new_op_id,
)
from vfleet.core.audit.log import AuditLog
from vfleet.core.audit.verify import Verdict, verify

__all__ = [
    "ENV_VAR",
    "GENESIS",
    "KEY_ENV_VAR",
    "AuditLog",
    "Verdict",
    "default_path",
    "digest",
    "head_path",
    "key_file_from_env",
    "load_key",
    "new_op_id",
    "verify",
]
