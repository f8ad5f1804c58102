"""High-availability proofs: chaos (SIGKILL / SIGSTOP of the leader) and scale."""

from __future__ import annotations
