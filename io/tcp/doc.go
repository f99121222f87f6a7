// Package tcp is bucky3's line-stream ingestion server, the TCP side of
// io/udp. It knows nothing about the protocols carried: a Listener accepts
// up to MaxConnections connections, reads each on its own goroutine into
// a buffer of its connection slot, and calls the caller's function with
// the whole newline-terminated lines of each read — one call per read, no
// copy, no channel hop, no allocation per read.
//
// A client costs only its own connection: a line longer than MaxLineSize
// is dropped up to the next newline (LinesTooLong) and the connection goes
// on; a connection that sends nothing for IdleTimeout is closed
// (ClosedIdle); one past MaxConnections is closed at once (Refused); a
// half-closed one is read to its end, and its last line, unterminated, is
// delivered. A handler that panics loses only the lines of that call
// (Panics, and a log line at most once a second); a panic elsewhere in a
// connection's goroutine closes that connection, and one in the accept
// loop stops Run with an error. Run owns every goroutine and waits for
// them on shutdown, after closing the listener and every connection.
package tcp
