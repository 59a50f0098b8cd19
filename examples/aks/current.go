package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
)

// readManagedCluster reads the current cluster from a JSON file: `az aks show -o json`'s output
// or the ARM resource as the REST API (or armcontainerservice) returns it.
//
// The two differ. az flattens "properties" into the top level and spells keys from its Python
// attribute names ("dnsServiceIp", "vnetSubnetId", "osSku", "enableRbac"), where the API has
// "dnsServiceIP", "vnetSubnetID", "osSKU", "enableRBAC"; the SDK's unmarshalers match keys
// exactly and would silently drop those fields. So readManagedCluster first moves everything
// that is not part of the resource envelope under "properties", then renames every key that
// matches an API field name except in case, object by object down the model (map keys, such as
// tags, addon names and config keys, are left alone).
func readManagedCluster(path string) (*armcontainerservice.ManagedCluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read current cluster: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("read current cluster %s: %w", path, err)
	}
	sample := managedClusterSample()
	if _, ok := doc["properties"]; !ok {
		props := map[string]any{}
		for k, v := range doc {
			if _, envelope := lookupKey(sample, k); !envelope {
				props[k] = v
				delete(doc, k)
			}
		}
		doc["properties"] = props
	}
	data, err = json.Marshal(normalizeKeys(doc, sample))
	if err != nil {
		return nil, fmt.Errorf("read current cluster %s: %w", path, err)
	}
	var mc armcontainerservice.ManagedCluster
	if err := json.Unmarshal(data, &mc); err != nil {
		return nil, fmt.Errorf("read current cluster %s: %w", path, err)
	}
	if mc.ID == nil {
		return nil, fmt.Errorf("read current cluster %s: no \"id\"", path)
	}
	return &mc, nil
}

// mapKey stands for "any key" in the sample: the keys of maps.
const mapKey = "\x00"

// managedClusterSample is the JSON of an armcontainerservice.ManagedCluster with every field
// set (each map with the one key mapKey), decoded into maps and slices: the tree of API key
// spellings.
var managedClusterSample = sync.OnceValue(func() map[string]any {
	var mc armcontainerservice.ManagedCluster
	fillSample(reflect.ValueOf(&mc).Elem(), map[reflect.Type]bool{})
	data, err := json.Marshal(mc)
	if err != nil {
		panic(fmt.Sprintf("marshal managed cluster sample: %v", err)) // the SDK's own types
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		panic(fmt.Sprintf("unmarshal managed cluster sample: %v", err))
	}
	return out
})

// fillSample sets every field reachable from v; recursive types stop at their second level.
func fillSample(v reflect.Value, onPath map[reflect.Type]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if onPath[v.Type().Elem()] {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fillSample(v.Elem(), onPath)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(0, 0).UTC()))
			return
		}
		onPath[v.Type()] = true
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillSample(f, onPath)
			}
		}
		delete(onPath, v.Type())
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillSample(s.Index(0), onPath)
		v.Set(s)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return
		}
		m := reflect.MakeMap(v.Type())
		e := reflect.New(v.Type().Elem()).Elem()
		fillSample(e, onPath)
		m.SetMapIndex(reflect.ValueOf(mapKey).Convert(v.Type().Key()), e)
		v.Set(m)
	}
}

// lookupKey returns the API spelling of key in the sample object, matching case-insensitively.
func lookupKey(sample map[string]any, key string) (string, bool) {
	if _, ok := sample[key]; ok {
		return key, true
	}
	for k := range sample {
		if strings.EqualFold(k, key) {
			return k, true
		}
	}
	return key, false
}

// normalizeKeys renames the keys of v to the spellings of sample, recursively.
func normalizeKeys(v, sample any) any {
	switch x := v.(type) {
	case map[string]any:
		s, _ := sample.(map[string]any)
		out := make(map[string]any, len(x))
		if elem, isMap := s[mapKey]; isMap {
			for k, e := range x {
				out[k] = normalizeKeys(e, elem)
			}
			return out
		}
		for k, e := range x {
			ck, _ := lookupKey(s, k)
			if _, dup := out[ck]; dup && ck != k {
				continue // both spellings given: the API's wins
			}
			out[ck] = normalizeKeys(e, s[ck])
		}
		return out
	case []any:
		var elem any
		if s, ok := sample.([]any); ok && len(s) > 0 {
			elem = s[0]
		}
		for i, e := range x {
			x[i] = normalizeKeys(e, elem)
		}
		return x
	}
	return v
}
