"""The backup pipeline: tar -> zstd -> blocks -> AES-GCM -> zfec, and back.

Every stage is plain blocking code over iterators of bytes, so the daemon runs it in a
thread pool and memory stays bounded by the block size times a small queue depth. The
composition lives in :mod:`.encoder` (:class:`BackupEncoder`) and :mod:`.decoder`
(:class:`RestoreDecoder`).
"""
