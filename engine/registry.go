package engine

import (
	"fmt"
	"reflect"
	"strings"
)

// ModuleKind says whether a module is a source (produces batches) or a
// destination (consumes them).
type ModuleKind uint8

// The two module kinds.
const (
	ModuleSource ModuleKind = iota + 1
	ModuleDestination
)

func (k ModuleKind) String() string {
	if k == ModuleSource {
		return "source"
	}
	return "destination"
}

// SourceConfig is implemented by a source's options struct through the
// embedded SourceOptions, plus its own Validate.
type SourceConfig interface {
	Source() *SourceOptions
	Validate() error
}

// DestinationConfig is implemented by a destination's options struct
// through the embedded DestinationOptions, plus its own Validate.
type DestinationConfig interface {
	Destination() *DestinationOptions
	Validate() error
}

// Type describes a module type: its name in module_type, its kind, the
// options it understands, and how to build it from a decoded options
// struct. Build Types with SourceType and DestinationType.
type Type struct {
	Name string
	Kind ModuleKind
	// keys are the option names the type's options struct accepts.
	keys map[string]bool
	// decode fills the type's options from decoder, validates them and
	// returns a constructor bound to them.
	decode func(decode func(any) error) (*decoded, error)
}

// decoded is a module whose options passed validation, ready to build.
type decoded struct {
	common *CommonOptions
	source *SourceOptions
	build  func(Module) (any, error)
}

// SourceType registers a source module type. defaults returns the options
// before the configuration is applied; build constructs the module and
// must not do I/O (that belongs in Run).
func SourceType[O any, P interface {
	*O
	SourceConfig
}, S Source](name string, defaults func() O, build func(Module, O) (S, error)) Type {
	return Type{
		Name: name,
		Kind: ModuleSource,
		keys: optionKeys(reflect.TypeFor[O]()),
		decode: func(decode func(any) error) (*decoded, error) {
			o := defaults()
			if err := decode(&o); err != nil {
				return nil, err
			}
			p := P(&o)
			if err := p.Source().ValidateCommon(); err != nil {
				return nil, err
			}
			if err := validateSource(p.Source()); err != nil {
				return nil, err
			}
			if err := p.Validate(); err != nil {
				return nil, err
			}
			return &decoded{
				common: &p.Source().CommonOptions,
				source: p.Source(),
				build:  func(m Module) (any, error) { return build(m, o) },
			}, nil
		},
	}
}

// DestinationType registers a destination module type; see SourceType.
func DestinationType[O any, P interface {
	*O
	DestinationConfig
}, D Destination](name string, defaults func() O, build func(Module, O) (D, error)) Type {
	return Type{
		Name: name,
		Kind: ModuleDestination,
		keys: optionKeys(reflect.TypeFor[O]()),
		decode: func(decode func(any) error) (*decoded, error) {
			o := defaults()
			if err := decode(&o); err != nil {
				return nil, err
			}
			p := P(&o)
			if err := p.Destination().ValidateCommon(); err != nil {
				return nil, err
			}
			if err := p.Validate(); err != nil {
				return nil, err
			}
			return &decoded{
				common: &p.Destination().CommonOptions,
				build:  func(m Module) (any, error) { return build(m, o) },
			}, nil
		},
	}
}

// optionKeys lists the TOML keys of an options struct, following embedded
// structs the way the TOML decoder does.
func optionKeys(t reflect.Type) map[string]bool {
	keys := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			for k := range optionKeys(f.Type) {
				keys[k] = true
			}
			continue
		}
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		keys[tag] = true
	}
	return keys
}

// validateSource checks the options every source shares.
func validateSource(s *SourceOptions) error {
	for k := range s.Metadata {
		if k == "" {
			return fmt.Errorf("metadata: empty tag name")
		}
	}
	if _, err := compileRules(s.MetricPostprocessor); err != nil {
		return fmt.Errorf("metric_postprocessor: %w", err)
	}
	return nil
}
