package portmap

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestParseSSDPResponse(t *testing.T) {
	tests := []struct {
		name    string
		resp    string
		want    string
		wantErr string
	}{
		{
			name: "miniupnpd",
			resp: "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
				"USN: uuid:1::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n" +
				"LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n",
			want: "http://192.168.1.1:5000/rootDesc.xml",
		},
		{
			name:    "not an IGD",
			resp:    "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\nLOCATION: http://192.168.1.5/d.xml\r\n\r\n",
			wantErr: `SSDP answer about "urn:schemas-upnp-org:device:MediaServer:1", not an IGD`,
		},
		{
			name:    "no location",
			resp:    "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
			wantErr: `SSDP answer: location "" is not an http URL`,
		},
		{
			name:    "https location",
			resp:    "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: file:///etc/passwd\r\n\r\n",
			wantErr: `SSDP answer: location "file:///etc/passwd" is not an http URL`,
		},
		{
			name:    "a search, not an answer",
			resp:    "M-SEARCH * HTTP/1.1\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
			wantErr: `SSDP answer: malformed HTTP`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSSDPResponse([]byte(tt.resp))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("location = %s, want %s", got, tt.want)
			}
		})
	}
}

func FuzzParseSSDPResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 404 Not Found\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := parseSSDPResponse(b)
		if err == nil && (u.Scheme != "http" || u.Host == "") {
			t.Fatalf("accepted location %q", u)
		}
	})
}

// fakeIGD is a UPnP IGD with one WANIPConnection:1 service, served over
// HTTP on loopback.
type fakeIGD struct {
	// permanentOnly answers 725 to any lease with a duration, as some
	// IGDv1 routers do.
	permanentOnly bool

	mu    sync.Mutex
	calls []string // "AddPortMapping TCP 18443->127.0.0.1:8443 lease=3600"
	maps  []string // "TCP 18443"
}

const fakeIGDDesc = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><UDN>uuid:a</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><UDN>uuid:b</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><UDN>uuid:c</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl</controlURL><eventSubURL>/evt</eventSubURL><SCPDURL>/scpd.xml</SCPDURL>
</service></serviceList>
</device></deviceList></device></deviceList></device></root>`

var soapArg = regexp.MustCompile(`<(New\w+)>([^<]*)</New\w+>`)

func (f *fakeIGD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/rootDesc.xml" {
		io.WriteString(w, fakeIGDDesc)
		return
	}
	_, action, _ := strings.Cut(strings.Trim(r.Header.Get("SOAPACTION"), `"`), "#")
	body, _ := io.ReadAll(r.Body)
	args := map[string]string{}
	for _, m := range soapArg.FindAllStringSubmatch(string(body), -1) {
		args[m[1]] = m[2]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := args["NewProtocol"] + " " + args["NewExternalPort"]
	out := ""
	switch action {
	case "AddPortMapping":
		f.calls = append(f.calls, fmt.Sprintf("AddPortMapping %s->%s:%s lease=%s", key, args["NewInternalClient"], args["NewInternalPort"], args["NewLeaseDuration"]))
		if f.permanentOnly && args["NewLeaseDuration"] != "0" {
			fault(w, 725, "OnlyPermanentLeasesSupported")
			return
		}
		if !slices.Contains(f.maps, key) {
			f.maps = append(f.maps, key)
		}
	case "DeletePortMapping":
		f.calls = append(f.calls, "DeletePortMapping "+key)
		if !slices.Contains(f.maps, key) {
			fault(w, 714, "NoSuchEntryInArray")
			return
		}
		f.maps = slices.DeleteFunc(f.maps, func(s string) bool { return s == key })
	case "GetExternalIPAddress":
		out = "<NewExternalIPAddress>203.0.113.9</NewExternalIPAddress>"
	default:
		fault(w, 401, "Invalid Action")
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">%s</u:%sResponse></s:Body></s:Envelope>`, action, out, action)
}

func fault(w http.ResponseWriter, code int, desc string) {
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
}

func (f *fakeIGD) state() (calls, maps []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), slices.Clone(f.maps)
}

func startFakeIGD(t *testing.T, permanentOnly bool) (*fakeIGD, string) {
	f := &fakeIGD{permanentOnly: permanentOnly}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL + "/rootDesc.xml"
}
