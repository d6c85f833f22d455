// Package exportbundle defines and writes the bundle a person receives for a
// request of access (GDPR Art. 15) or of portability (Art. 20): one ZIP file
// that holds, for every system that was asked, the data it holds about the
// person, both structured and readable.
//
// A bundle holds, in this order:
//
//	manifest.json                 what the bundle holds: Manifest.Encode's bytes
//	systems/<system>.json         each system's records document, as it exported it
//	csv/<system>/<table>.csv      each table of that document, for a spreadsheet
//	files/<system>/<name>         each system's files (a webinar recording, ...)
//	index.html                    a page that shows all of it in plain language
//
// A table whose name more than one category of a document uses is at
// csv/<system>/<category>.<table>.csv. Every name in a path is a safe single
// segment ([SafeName]); [FilePaths] gives a system's files unique ones.
//
// The JSON documents are the portable, machine-readable copy that Art. 20
// asks for; the CSV files and index.html are for the person. The manifest
// lists every records document and file with its size and SHA-256, and its
// own SHA-256 ([Manifest.Digest]) goes into the transparency log and the
// certificate of fulfilment: anyone can check that a bundle is the one that
// was issued, with [Check].
//
// A records document groups rows by data category, then by table:
//
//	{"account": {"profile": [{"email": "...", "name": "..."}]},
//	 "connection": {"login_history": [{...}, {...}]}}
//
// [Write] streams a bundle: it never holds a file in memory, whatever its
// size, and checks every byte it copies against the manifest. Records
// documents are small ([MaxRecordsSize]) and are held while it writes.
//
// In the CSV files a text that a spreadsheet would run as a formula (one that
// starts with =, +, -, @, a tab or a carriage return) is written with a
// leading apostrophe; the JSON document has the exact value. The CSV files
// start with a UTF-8 byte order mark, so that a spreadsheet reads accented
// letters right.
package exportbundle
