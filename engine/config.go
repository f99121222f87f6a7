package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// GlobalOptions are the top-level options that belong to the agent rather
// than to a module. Other top-level keys are inherited by every module that
// understands them.
type GlobalOptions struct {
	// LogLevel is debug, info, warning or error (default info); modules
	// inherit it unless they set their own.
	LogLevel string
	// LogFormat is text (default) or json.
	LogFormat string
	// ShutdownTimeout bounds the final flush and push at shutdown.
	ShutdownTimeout float64
	// MemoryLimit is the agent's memory budget in bytes (0: none); see
	// Memory.
	MemoryLimit int64
}

// globalKeys are the top-level keys of GlobalOptions. log_level is also a
// module option: modules inherit it like any other top-level key.
var globalKeys = []string{"log_level", "log_format", "shutdown_timeout", "memory_limit"}

// ModuleConfig is one configured, validated module, ready to build.
type ModuleConfig struct {
	Name string
	Type Type
	// Common holds the options every module has (after inheritance).
	Common *CommonOptions
	// Source holds the source options; nil for destinations.
	Source *SourceOptions
	build  func(Module) (any, error)
}

// Config is a loaded configuration: the global options and the active
// modules in the order the file lists them.
type Config struct {
	Global  GlobalOptions
	Modules []ModuleConfig
}

// ConfigError is a configuration problem. The agent prints it and exits 2.
type ConfigError struct {
	Module string // empty for global problems
	Option string // empty when no single option is at fault
	Err    error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.Module != "" {
		fmt.Fprintf(&b, ": module %q", e.Module)
	}
	if e.Option != "" {
		fmt.Fprintf(&b, ": option %q", e.Option)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadFile reads and parses the configuration file at path. lookupEnv
// resolves ${VAR} and $VAR references (os.LookupEnv in production).
func LoadFile(path string, types []Type, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	return Parse(data, types, lookupEnv)
}

// Parse parses a configuration document; see LoadFile.
func Parse(data []byte, types []Type, lookupEnv func(string) (string, bool)) (*Config, error) {
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		if ref := bareReference(data); ref != "" {
			return nil, &ConfigError{Err: fmt.Errorf("%s is not inside a string: environment variables are substituted into string values only", ref)}
		}
		return nil, &ConfigError{Err: err}
	}
	// Variables are substituted into string values after parsing, so that
	// a value can never add keys or tables to the configuration.
	if _, err := expandValues(doc, "", lookupEnv); err != nil {
		return nil, err
	}
	byName := map[string]Type{}
	knownKeys := map[string]bool{}
	for _, t := range types {
		byName[t.Name] = t
		for k := range t.keys {
			knownKeys[k] = true
		}
	}

	cfg := &Config{Global: GlobalOptions{LogLevel: "info", LogFormat: "text", ShutdownTimeout: 5, MemoryLimit: DefaultMemoryLimit}}
	globals := map[string]any{}
	var moduleNames []string
	for _, key := range topLevelKeys(md) {
		v := doc[key]
		if table, ok := v.(map[string]any); ok {
			if _, isModule := table["module_type"]; isModule {
				moduleNames = append(moduleNames, key)
				continue
			}
		}
		if !slices.Contains(globalKeys, key) && !knownKeys[key] {
			return nil, &ConfigError{Option: key, Err: errors.New("unknown option")}
		}
		globals[key] = v
	}
	if err := decodeGlobals(globals, &cfg.Global); err != nil {
		return nil, err
	}

	destinations := map[string]bool{}
	for _, name := range moduleNames {
		table := doc[name].(map[string]any)
		typeName, ok := table["module_type"].(string)
		if !ok {
			return nil, &ConfigError{Module: name, Option: "module_type", Err: errors.New("must be a string")}
		}
		t, ok := byName[typeName]
		if !ok {
			return nil, &ConfigError{Module: name, Option: "module_type", Err: fmt.Errorf("unknown module type %q", typeName)}
		}
		merged := map[string]any{}
		for k, v := range globals {
			if t.keys[k] {
				merged[k] = v
			}
		}
		for k, v := range table {
			if !t.keys[k] {
				return nil, &ConfigError{Module: name, Option: k, Err: fmt.Errorf("unknown option for %s", typeName)}
			}
			merged[k] = v
		}
		d, err := t.decode(func(o any) error { return decodeMap(merged, o) })
		if err != nil {
			return nil, &ConfigError{Module: name, Err: err}
		}
		if d.common.ModuleInactive {
			continue
		}
		if d.common.LogLevel == "" {
			d.common.LogLevel = cfg.Global.LogLevel
		}
		if t.Kind == ModuleDestination {
			destinations[name] = true
		}
		cfg.Modules = append(cfg.Modules, ModuleConfig{Name: name, Type: t, Common: d.common, Source: d.source, build: d.build})
	}
	if len(cfg.Modules) == 0 {
		return nil, &ConfigError{Err: errors.New("no active module configured")}
	}
	for _, m := range cfg.Modules {
		if m.Source == nil {
			continue
		}
		for _, d := range m.Source.DestinationModules {
			if !destinations[d] {
				return nil, &ConfigError{Module: m.Name, Option: "destination_modules", Err: fmt.Errorf("%q is not a configured, active destination", d)}
			}
		}
	}
	return cfg, nil
}

// topLevelKeys returns the document's top-level keys in file order, so
// modules start in the order the operator wrote them.
func topLevelKeys(md toml.MetaData) []string {
	var keys []string
	seen := map[string]bool{}
	for _, k := range md.Keys() {
		if len(k) == 0 || seen[k[0]] {
			continue
		}
		seen[k[0]] = true
		keys = append(keys, k[0])
	}
	return keys
}

func decodeGlobals(globals map[string]any, g *GlobalOptions) error {
	var raw struct {
		LogLevel        *string  `toml:"log_level"`
		LogFormat       *string  `toml:"log_format"`
		ShutdownTimeout *float64 `toml:"shutdown_timeout"`
		MemoryLimit     *int64   `toml:"memory_limit"`
	}
	subset := map[string]any{}
	for _, k := range globalKeys {
		if v, ok := globals[k]; ok {
			subset[k] = v
		}
	}
	if err := decodeMap(subset, &raw); err != nil {
		return &ConfigError{Err: err}
	}
	if raw.LogLevel != nil {
		switch *raw.LogLevel {
		case "debug", "info", "warning", "error":
			g.LogLevel = *raw.LogLevel
		default:
			return &ConfigError{Option: "log_level", Err: fmt.Errorf("must be debug, info, warning or error, got %q", *raw.LogLevel)}
		}
	}
	if raw.LogFormat != nil {
		if *raw.LogFormat != "text" && *raw.LogFormat != "json" {
			return &ConfigError{Option: "log_format", Err: fmt.Errorf("must be text or json, got %q", *raw.LogFormat)}
		}
		g.LogFormat = *raw.LogFormat
	}
	if raw.ShutdownTimeout != nil {
		if err := CheckSeconds("shutdown_timeout", *raw.ShutdownTimeout, 0); err != nil {
			return &ConfigError{Err: err}
		}
		g.ShutdownTimeout = *raw.ShutdownTimeout
	}
	if raw.MemoryLimit != nil {
		if *raw.MemoryLimit != 0 && *raw.MemoryLimit < minMemoryLimit {
			return &ConfigError{Option: "memory_limit", Err: fmt.Errorf("must be 0 (no limit) or at least %d bytes (64 MiB), got %d", minMemoryLimit, *raw.MemoryLimit)}
		}
		g.MemoryLimit = *raw.MemoryLimit
	}
	return nil
}

// decodeMap decodes a generic TOML table into the options struct o by
// re-encoding it: the TOML decoder then applies its type rules (integers
// into float seconds, tables into structs) and names the offending key.
func decodeMap(table map[string]any, o any) error {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(table); err != nil {
		return err
	}
	md, err := toml.Decode(buf.String(), o)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return errors.New(pe.Message)
		}
		return err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		slices.Sort(keys)
		return fmt.Errorf("unknown option %q", keys[0])
	}
	return nil
}

// expandValues substitutes environment variables into every string value
// of v, in place; path names v in errors. It returns v, or the expanded
// string when v is one.
func expandValues(v any, path string, lookupEnv func(string) (string, bool)) (any, error) {
	var err error
	switch v := v.(type) {
	case string:
		x, err := expandEnv([]byte(v), lookupEnv)
		if err != nil {
			return nil, &ConfigError{Option: path, Err: err}
		}
		return string(x), nil
	case map[string]any:
		for k, e := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if v[k], err = expandValues(e, p, lookupEnv); err != nil {
				return nil, err
			}
		}
	case []any:
		for i, e := range v {
			if v[i], err = expandValues(e, fmt.Sprintf("%s[%d]", path, i), lookupEnv); err != nil {
				return nil, err
			}
		}
	case []map[string]any:
		for i, e := range v {
			if _, err = expandValues(e, fmt.Sprintf("%s[%d]", path, i), lookupEnv); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// bareReference returns the first ${VAR} or $VAR of data that stands
// outside a string and a comment, or "".
func bareReference(data []byte) string {
	var quote byte // the open string's quote, 0 outside strings
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote || c == '\n' {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case c == '$' && i+1 < len(data) && (data[i+1] == '{' || isEnvNameByte(data[i+1], true)):
			end := i + 2
			for end < len(data) && (isEnvNameByte(data[end], false) || data[end] == '}' && data[i+1] == '{') {
				end++
				if data[end-1] == '}' {
					break
				}
			}
			return string(data[i:end])
		}
	}
	return ""
}

// expandEnv replaces ${VAR} and $VAR with the variable's value; $$ is a
// literal $. An unset variable is an error naming it.
func expandEnv(data []byte, lookupEnv func(string) (string, bool)) ([]byte, error) {
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c != '$' {
			out = append(out, c)
			continue
		}
		if i+1 < len(data) && data[i+1] == '$' {
			out = append(out, '$')
			i++
			continue
		}
		var name string
		if i+1 < len(data) && data[i+1] == '{' {
			end := bytes.IndexByte(data[i+2:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ${ at byte %d", i)
			}
			name = string(data[i+2 : i+2+end])
			i += 2 + end
		} else {
			j := i + 1
			for j < len(data) && isEnvNameByte(data[j], j == i+1) {
				j++
			}
			name = string(data[i+1 : j])
			i = j - 1
		}
		if name == "" || !validEnvName(name) {
			return nil, fmt.Errorf("invalid variable reference %q (write $$ for a literal $)", "$"+name)
		}
		v, ok := lookupEnv(name)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", name)
		}
		out = append(out, v...)
	}
	return out, nil
}

func isEnvNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || !first && c >= '0' && c <= '9'
}

func validEnvName(name string) bool {
	for i := 0; i < len(name); i++ {
		if !isEnvNameByte(name[i], i == 0) {
			return false
		}
	}
	return true
}

// sourceOptions returns the source options of the module called name, or
// nil when it is not a source.
func (c *Config) sourceOptions(name string) *SourceOptions {
	for _, m := range c.Modules {
		if m.Name == name {
			return m.Source
		}
	}
	return nil
}
