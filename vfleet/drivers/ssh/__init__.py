"""The shared asyncssh transport and command batching."""
