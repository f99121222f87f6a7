// Command sender is the program of the origin detection test's container:
// it sends each line given after the socket path count times, one line a
// datagram, to a unix datagram socket, then waits to be killed, so that
// the server can still find its cgroup when it reads the datagrams.
//
//	sender <socket> <count> <line>...
package main

import (
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 4 {
		os.Stderr.WriteString("usage: sender <socket> <count> <line>...\n")
		os.Exit(2)
	}
	count, err := strconv.Atoi(os.Args[2])
	if err != nil {
		panic(err)
	}
	conn, err := net.Dial("unixgram", os.Args[1])
	if err != nil {
		panic(err)
	}
	for _, line := range os.Args[3:] {
		for range count {
			// A blocking socket: a full queue makes the write wait, so
			// nothing is lost.
			if _, err := conn.Write([]byte(line)); err != nil {
				panic(err)
			}
		}
	}
	time.Sleep(time.Hour)
}
