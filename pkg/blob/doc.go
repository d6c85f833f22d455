// Package blob stores the files of exports: what connectors gather for a
// GDPR access request (a person's records as JSON, a 1 GiB webinar
// recording) waits here until the orchestrator streams it into the ZIP the
// person downloads.
//
// Everything here is personal data, so two rules shape the package:
//
//   - Memory stays bounded whatever a blob's size. Put and Open stream;
//     no store ever holds a whole blob in memory (the filesystem store
//     copies through a small buffer, the S3 store uploads in parts of
//     16 MiB, the encryption works on chunks of 64 KiB).
//   - Blobs are encrypted at rest with a key of their own export
//     ([Encrypted], [NewKey]). When the export expires its key is
//     destroyed, and with it every copy of its blobs: a backup or snapshot
//     of the store taken before the deletion is unreadable without the key
//     (crypto-shredding), so the erasure reaches copies Lethe cannot
//     reach.
//
// Errors never carry a key or a path: keys may hold a file's name, which
// may itself be personal data, and errors end up in logs. A bad key is
// reported by the rule it breaks and its length only.
//
// # Stores
//
// [FS] keeps a blob in a file under a root folder and writes it through a
// temporary file that is synced and renamed into place, so a crash never
// leaves part of a blob under a key. [S3] keeps it in an S3-compatible
// bucket (AWS S3, MinIO, Ceph) with a single PUT for a blob under 16 MiB
// and a multipart upload otherwise, aborted if the Put fails. [OpenURL]
// opens either from a URL given in configuration.
//
// # Encrypted format
//
// [Encrypted] stores a blob as a header followed by chunks:
//
//	header = "LETHEB1" (7 bytes) || nonce prefix (7 random bytes, new for every Put)
//	chunk i = AES-256-GCM-Seal(key, nonce_i, plaintext_i, additional data = name)
//	nonce_i = nonce prefix || uint32 big-endian i || last
//
// where key is the export's 32-byte key, name is the blob's key in the
// store as bytes (e.g. "req-1/records.json"), i counts chunks from 0, last is 0x01 for the final chunk and 0x00
// for every other, and each plaintext_i holds exactly 64 KiB (65536 bytes)
// except the final one, which holds 0 to 65536 bytes; a sealed chunk is its
// plaintext plus a 16-byte tag. There is always a final chunk, so an empty
// blob is the header and one empty chunk (30 bytes). A reader splits the
// stored bytes after the header into pieces of 65552 bytes; the piece that
// ends the stream is the final one and is opened with last = 0x01. This is
// the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): a
// changed byte, chunks reordered or taken from another blob (another nonce
// prefix), a blob truncated anywhere (even between chunks: the new end was
// sealed with last = 0x00) or extended, a blob moved to another key
// (another additional data) and a wrong key all fail to authenticate, and
// reading fails with [ErrCorrupt] at the first chunk that shows it, before
// any of that chunk's plaintext is returned. A 56-bit random prefix makes
// a repeated nonce unlikely (about 2^28 blobs under one key before a
// collision becomes likely); a key serves one export's handful of blobs.
// The magic names the format's version: another format would have another.
package blob
