package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"
)

// readEnvFile reads a systemd environment file: KEY=VALUE lines, # comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

// TestDeployClusterEnvFiles starts three nodes with the variables of
// deploy/cluster/n1.env..n3.env, their hosts' addresses moved to free
// ports on loopback: they form one cluster that serves from every node.
func TestDeployClusterEnvFiles(t *testing.T) {
	addrs := map[string]string{} // the files' host:port -> a free loopback address
	local := func(hostPort string) string {
		if _, ok := addrs[hostPort]; !ok {
			addrs[hostPort] = freeAddr(t)
		}
		return addrs[hostPort]
	}
	hostPort := regexp.MustCompile(`10\.0\.0\.[0-9]+:[0-9]+`)
	c := &testCluster{t: t}
	names := map[string]bool{}
	for i := 1; i <= 3; i++ {
		vars := readEnvFile(t, filepath.Join("../../deploy/cluster", fmt.Sprintf("n%d.env", i)))
		m := &member{name: vars["TALLY_NAME"]}
		names[m.name] = true
		for k, v := range vars {
			m.env = append(m.env, k+"="+hostPort.ReplaceAllStringFunc(v, local))
		}
		m.url = "nats://" + local(vars["TALLY_LISTEN"])
		m.env = append(m.env, "TALLY_DATA="+t.TempDir())
		c.members = append(c.members, m)
	}
	if len(names) != 3 {
		t.Fatalf("the env files name %d distinct nodes, want 3", len(names))
	}
	c.launchAll()
	checkServesFromEveryNode(t, c)
	unit, err := os.ReadFile("../../deploy/cluster/tally-node@.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("EnvironmentFile=/etc/tally/%i.env")) {
		t.Error("the unit does not read its node's environment file")
	}
}

// TestDeployNATSCluster runs deploy/nats-cluster.conf as three servers (on
// loopback ports instead of hosts nats-1..3) and a node on each with
// --nats-url and the node user's credentials; clients use the back-end
// account of deploy/accounts.conf.
func TestDeployNATSCluster(t *testing.T) {
	pw := deployPasswords(t)
	conf := deployCopy(t, "nats-cluster.conf")
	// It includes nats-server.conf, which deployCopy writes elsewhere.
	b, err := os.ReadFile(deployCopy(t, "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(conf), "nats-server.conf"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var servers []*server.Server
	for i := range 3 {
		t.Setenv("NATS_SERVER_NAME", fmt.Sprintf("nats-%d", i+1))
		opts, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("deploy/nats-cluster.conf: %v", err)
		}
		if opts.ServerName != fmt.Sprintf("nats-%d", i+1) || opts.Cluster.Name != "tally" || len(opts.Routes) != 3 {
			t.Fatalf("deploy/nats-cluster.conf: server %q, cluster %q, %d routes", opts.ServerName, opts.Cluster.Name, len(opts.Routes))
		}
		for j, r := range opts.Routes {
			if r.Host != fmt.Sprintf("nats-%d:6222", j+1) {
				t.Fatalf("deploy/nats-cluster.conf: route %d is %s", j, r.Host)
			}
			r.Host = routes[j]
		}
		host, port, _ := net.SplitHostPort(routes[i])
		opts.Cluster.Host = host
		fmt.Sscan(port, &opts.Cluster.Port)
		opts.Host, opts.Port = "127.0.0.1", -1
		opts.StoreDir = t.TempDir()
		opts.NoLog, opts.NoSigs = true, true
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10e9) {
			t.Fatal("a NATS server of the cluster is not ready")
		}
	}
	c := &testCluster{t: t, client: []nats.Option{nats.UserInfo("backend", pw["backend"])}}
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	for i, s := range servers {
		m := &member{name: fmt.Sprintf("tally-%d", i+1), url: s.ClientURL()}
		m.env = []string{"TALLY_NAME=" + m.name, "TALLY_NATS_USER=tally-node", "TALLY_NATS_PASSWORD=" + pw["tally-node"]}
		m.args = []string{"--nats-url", strings.Join(urls, ",")}
		c.members = append(c.members, m)
	}
	c.launchAll()
	checkServesFromEveryNode(t, c)
	for _, m := range c.members {
		if !strings.Contains(m.p.stderr.String(), "R3)") {
			t.Errorf("%s did not replicate its journal on the three servers:\n%s", m.name, m.p.stderr)
		}
	}
}

// TestDeployKubernetesAndCompose parses deploy/kubernetes/tally.yaml and
// deploy/compose.yaml and checks what a cluster needs of them: three nodes
// of distinct names, each routing to all three by names that resolve
// (the headless Service's pod names, the compose services).
func TestDeployKubernetesAndCompose(t *testing.T) {
	b, err := os.ReadFile("../../deploy/kubernetes/tally.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type object struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			ClusterIP   string `yaml:"clusterIP"`
			ServiceName string `yaml:"serviceName"`
			Replicas    int    `yaml:"replicas"`
			Template    struct {
				Spec struct {
					Containers []struct {
						Env []struct {
							Name      string `yaml:"name"`
							Value     string `yaml:"value"`
							ValueFrom *struct {
								FieldRef struct {
									FieldPath string `yaml:"fieldPath"`
								} `yaml:"fieldRef"`
							} `yaml:"valueFrom"`
						} `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	var headless, set *object
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o object
		if err := dec.Decode(&o); err != nil {
			break
		}
		switch {
		case o.Kind == "Service" && o.Spec.ClusterIP == "None":
			headless = &o
		case o.Kind == "StatefulSet":
			set = &o
		}
	}
	if headless == nil || set == nil {
		t.Fatal("deploy/kubernetes/tally.yaml: want a headless Service and a StatefulSet")
	}
	if set.Spec.ServiceName != headless.Metadata.Name || set.Spec.Replicas != 3 || len(set.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("StatefulSet: service %q (headless %q), %d replicas", set.Spec.ServiceName, headless.Metadata.Name, set.Spec.Replicas)
	}
	env := map[string]string{}
	for _, e := range set.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			env[e.Name] = "from:" + e.ValueFrom.FieldRef.FieldPath
		}
	}
	want := fmt.Sprintf("%[1]s-0.%[2]s:6222,%[1]s-1.%[2]s:6222,%[1]s-2.%[2]s:6222", set.Metadata.Name, headless.Metadata.Name)
	if env["TALLY_NAME"] != "from:metadata.name" || env["TALLY_ROUTES"] != want || env["TALLY_CLUSTER"] == "" {
		t.Errorf("StatefulSet env: name %q, routes %q (want %q), cluster %q", env["TALLY_NAME"], env["TALLY_ROUTES"], want, env["TALLY_CLUSTER"])
	}

	b, err = os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("deploy/compose.yaml: %v", err)
	}
	if len(compose.Services) != 3 {
		t.Fatalf("deploy/compose.yaml: %d services, want 3", len(compose.Services))
	}
	names := map[string]bool{}
	for svc, s := range compose.Services {
		names[s.Environment["TALLY_NAME"]] = true
		var routes []string
		for name := range compose.Services {
			routes = append(routes, name+":6222")
		}
		for _, r := range routes {
			if !strings.Contains(s.Environment["TALLY_ROUTES"], r) {
				t.Errorf("compose service %s: routes %q miss %s", svc, s.Environment["TALLY_ROUTES"], r)
			}
		}
	}
	if len(names) != 3 {
		t.Errorf("deploy/compose.yaml: %d distinct node names, want 3", len(names))
	}
}
