package parse

import (
	"math"
	"strconv"
	"unsafe"
)

// toString returns b as a string without copying. This is the package's
// only unsafe conversion: the result aliases b, so it must not outlive the
// call it is passed to and b must not change meanwhile. strconv keeps no
// reference to its argument (its errors clone it).
func toString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// float64pow10 holds the powers of ten that float64 represents exactly.
var float64pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat parses a plain decimal number, [+-]digits[.digits][e[+-]digits]
// (the integer or the fraction part may be empty, not both). It accepts
// less than strconv.ParseFloat on purpose: no hex, underscores, inf or nan.
// Numbers whose mantissa and power of ten are exact float64s (nearly every
// StatsD value) are computed directly, which is correctly rounded; the rest
// go to strconv. ok is false for bad syntax and for overflow to ±Inf.
func parseFloat(b []byte) (f float64, ok bool) {
	i, n := 0, len(b)
	neg := false
	if i < n && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	var mant uint64
	exp := 0
	digits := false
	slow := false
	for ; i < n && isDigit(b[i]); i++ {
		digits = true
		if mant < math.MaxUint64/10-9 {
			mant = mant*10 + uint64(b[i]-'0')
		} else {
			slow = true
		}
	}
	if i < n && b[i] == '.' {
		for i++; i < n && isDigit(b[i]); i++ {
			digits = true
			if mant < math.MaxUint64/10-9 {
				mant = mant*10 + uint64(b[i]-'0')
				exp--
			} else {
				slow = true
			}
		}
	}
	if !digits {
		return 0, false
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < n && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		if i == n {
			return 0, false
		}
		e := 0
		for ; i < n && isDigit(b[i]); i++ {
			if e < 100000 {
				e = e*10 + int(b[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != n {
		return 0, false
	}
	if !slow && mant <= 1<<53 && exp >= -22 && exp <= 22 {
		f = float64(mant)
		if exp < 0 {
			f /= float64pow10[-exp]
		} else {
			f *= float64pow10[exp]
		}
		if neg {
			f = -f
		}
		return f, true
	}
	f, err := strconv.ParseFloat(toString(b), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// trimSpace trims ASCII whitespace; lines are ASCII-framed, so Unicode
// spaces are left to the name and value rules.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// timestampMs converts a timestamp in seconds, or in milliseconds when above
// 2^31, to milliseconds, and checks it is within windowMs of nowMs.
func timestampMs(v float64, nowMs int64, windowMs float64) (int64, error) {
	ms := v
	if v <= 1<<31 {
		ms = v * 1000
	}
	if math.Abs(ms-float64(nowMs)) > windowMs {
		return 0, ErrTimestampOutOfWindow
	}
	return int64(ms), nil
}
