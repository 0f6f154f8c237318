// vcsim for vfleet's tests: VMware's vCenter/ESXi simulator (govmomi's
// simulator package, from Debian's golang-github-vmware-govmomi-dev, which
// ships no vcsim program) with the few knobs the tests need. Built offline in
// GOPATH mode by testbed/vcsim.sh.
//
// It prints ONE line of JSON on stdout once it is listening (url, model, VM
// and host counts, certificate fingerprints), writes the same line to -info
// if given, then serves until SIGINT/SIGTERM.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// intercept answers a few SOAP calls itself, in front of the simulator: this
// govmomi (0.24) lacks RebootGuest, and tests need real RestrictedVersion and
// NoPermission faults. (Wrapping the VM objects instead breaks the simulator's
// own type assertions, e.g. in QueryPerf.)
type intercept struct {
	next  http.Handler
	fault string // "", "restricted" (free ESXi license) or "noperm"
}

var soapCall = regexp.MustCompile(`<(?:\w+:)?(RebootGuest|PowerOnVM_Task|PowerOffVM_Task|ShutdownGuest|ResetVM_Task|SuspendVM_Task)\b[^>]*>\s*<(?:\w+:)?_this[^>]*>([^<]+)<`)

var privileges = map[string]string{
	"RebootGuest": "VirtualMachine.Interact.Reset", "ResetVM_Task": "VirtualMachine.Interact.Reset",
	"PowerOnVM_Task": "VirtualMachine.Interact.PowerOn", "PowerOffVM_Task": "VirtualMachine.Interact.PowerOff",
	"ShutdownGuest": "VirtualMachine.Interact.PowerOff", "SuspendVM_Task": "VirtualMachine.Interact.Suspend",
}

func (h *intercept) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	m := soapCall.FindSubmatch(body)
	if m == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	method, ref := string(m[1]), types.ManagedObjectReference{Type: "VirtualMachine", Value: string(m[2])}
	switch {
	case h.fault == "restricted":
		writeFault(w, "Current license or ESXi version prohibits execution of the requested operation.",
			`<RestrictedVersionFault xmlns="urn:vim25" xsi:type="RestrictedVersion"></RestrictedVersionFault>`)
	case h.fault == "noperm":
		writeFault(w, "Permission to perform this operation was denied.", fmt.Sprintf(
			`<NoPermissionFault xmlns="urn:vim25" xsi:type="NoPermission"><object type="VirtualMachine">%s</object>`+
				`<privilegeId>%s</privilegeId></NoPermissionFault>`, ref.Value, privileges[method]))
	case method == "RebootGuest":
		rebootGuest(w, ref)
	default:
		h.next.ServeHTTP(w, r)
	}
}

func rebootGuest(w http.ResponseWriter, ref types.ManagedObjectReference) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		writeFault(w, "The object has already been deleted or has not been completely created",
			fmt.Sprintf(`<ManagedObjectNotFoundFault xmlns="urn:vim25" xsi:type="ManagedObjectNotFound">`+
				`<obj type="VirtualMachine">%s</obj></ManagedObjectNotFoundFault>`, ref.Value))
		return
	}
	var state types.VirtualMachinePowerState
	simulator.Map.WithLock(vm, func() {
		state = vm.Runtime.PowerState
		if state == types.VirtualMachinePowerStatePoweredOn {
			// A guest reboot keeps the VM powered on; a new boot time makes it observable.
			now := time.Now()
			vm.Runtime.BootTime = &now
			simulator.Map.Update(vm, []types.PropertyChange{{Name: "runtime.bootTime", Val: now}})
		}
	})
	if state != types.VirtualMachinePowerStatePoweredOn {
		writeFault(w, "The attempted operation cannot be performed in the current state.", fmt.Sprintf(
			`<InvalidPowerStateFault xmlns="urn:vim25" xsi:type="InvalidPowerState">`+
				`<requestedState>poweredOn</requestedState><existingState>%s</existingState></InvalidPowerStateFault>`, state))
		return
	}
	writeEnvelope(w, http.StatusOK, `<RebootGuestResponse xmlns="urn:vim25"></RebootGuestResponse>`)
}

func writeFault(w http.ResponseWriter, message, detail string) {
	var text bytes.Buffer
	_ = xml.EscapeText(&text, []byte(message))
	writeEnvelope(w, http.StatusInternalServerError, `<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>`+
		text.String()+`</faultstring><detail>`+detail+`</detail></soapenv:Fault>`)
}

func writeEnvelope(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" `+
		`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>`+
		body+`</soapenv:Body></soapenv:Envelope>`)
}

// selfSigned makes a fresh certificate for 127.0.0.1/localhost, so TLS tests
// see a real "unknown issuer" and can pin or trust exactly this certificate.
func selfSigned() (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim.vfleet.test", Organization: []string{"vfleet testbed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // lets the test use the certificate itself as a CA bundle
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der
}

func fingerprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func main() {
	modelName := flag.String("model", "esx", "esx (a standalone ESXi host) or vpx (vCenter)")
	vms := flag.Int("vm", 2, "VMs per resource pool (esx: the total; vpx: per host pool and per cluster)")
	clusterHosts := flag.Int("cluster-hosts", 3, "vpx: hosts per cluster")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	useTLS := flag.Bool("tls", true, "serve https with a fresh self-signed certificate")
	user := flag.String("user", "vfleet", "the only accepted user name")
	pass := flag.String("pass", "vfleet-secret", "the only accepted password")
	certOut := flag.String("cert", "", "write the server certificate (PEM) to this file")
	infoOut := flag.String("info", "", "also write the JSON info line to this file")
	fault := flag.String("fault", "", "make VM power operations fail: restricted (free ESXi license) or noperm")
	flag.Parse()

	var model *simulator.Model
	switch *modelName {
	case "esx":
		model = simulator.ESX()
	case "vpx":
		model = simulator.VPX()
		model.ClusterHost = *clusterHosts
	default:
		log.Fatalf("unknown -model %q (esx or vpx)", *modelName)
	}
	model.Machine = *vms
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	if *fault != "" && *fault != "restricted" && *fault != "noperm" {
		log.Fatalf("unknown -fault %q (restricted or noperm)", *fault)
	}
	started := time.Now()
	for _, entity := range simulator.Map.All("VirtualMachine") {
		vm := entity.(*simulator.VirtualMachine)
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			vm.Runtime.BootTime = &started // vcsim leaves it unset; real ESXi always has it
		}
	}
	// An explicit user: with the default login vcsim accepts any password.
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *pass)}

	info := map[string]interface{}{"model": *modelName, "user": *user, "pid": os.Getpid()}
	if *useTLS {
		cert, der := selfSigned()
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s1, s256 := sha1.Sum(der), sha256.Sum256(der)
		info["sha1"], info["sha256"] = fingerprint(s1[:]), fingerprint(s256[:])
		if *certOut != "" {
			pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
			if err := os.WriteFile(*certOut, pemBytes, 0o644); err != nil {
				log.Fatal(err)
			}
			info["cert"] = *certOut
		}
	}
	server := model.Service.NewServer()
	// Nobody knows the port yet, so swapping the handler now races with no request.
	server.Config.Handler = &intercept{next: server.Config.Handler, fault: *fault}
	count := model.Count()
	u := *server.URL
	u.User = nil // never print the password
	info["url"], info["vms"], info["hosts"] = u.String(), count.Machine, count.Host

	line, _ := json.Marshal(info)
	if *infoOut != "" {
		if err := os.WriteFile(*infoOut, append(line, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(string(line))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	server.Close()
	model.Remove()
}
