package awssim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The instance states of EC2, with their codes.
const (
	Pending      = "pending"
	Running      = "running"
	ShuttingDown = "shutting-down"
	Terminated   = "terminated"
	Stopping     = "stopping"
	Stopped      = "stopped"
)

var stateCodes = map[string]int{Pending: 0, Running: 16, ShuttingDown: 32, Terminated: 48, Stopping: 64, Stopped: 80}

// next is the state a transitional state ends in.
var next = map[string]string{Pending: Running, Stopping: Stopped, ShuttingDown: Terminated}

// Instance is what the simulator knows of one EC2 instance. AddInstance
// fills what is left empty.
type Instance struct {
	ID               string
	ImageID          string
	InstanceType     string
	State            string
	AvailabilityZone string
	SubnetID         string
	VpcID            string
	KeyName          string
	PrivateIP        string
	// PublicIP is set while the instance runs; stopping releases it and
	// the next start assigns a new one, as EC2 does for instances
	// without an Elastic IP.
	PublicIP   string
	LaunchTime time.Time
	Tags       map[string]string
}

type instance struct {
	Instance
	// polls counts the DescribeInstances calls that saw the current
	// transitional state; since is when the state was entered.
	polls int
	since time.Time
}

// instanceIDRe is the shape of an instance id (old 8-digit or 17-digit).
var instanceIDRe = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// AddInstance seeds an instance (for test setup) and returns its id. An
// empty State is running; other fields get EC2-like values.
func (s *Server) AddInstance(in Instance) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(in).ID
}

func (s *Server) addLocked(in Instance) *instance {
	s.seq++
	n := s.seq
	if in.ID == "" {
		in.ID = fmt.Sprintf("i-%017x", 0x0abc000000000000+n)
	}
	if in.ImageID == "" {
		in.ImageID = "ami-0123456789abcdef0"
	}
	if in.InstanceType == "" {
		in.InstanceType = "t3.micro"
	}
	if in.State == "" {
		in.State = Running
	}
	if in.AvailabilityZone == "" {
		in.AvailabilityZone = s.opts.Region + "a"
	}
	if in.SubnetID == "" {
		in.SubnetID = "subnet-0123456789abcdef0"
	}
	if in.VpcID == "" {
		in.VpcID = "vpc-0123456789abcdef0"
	}
	if in.PrivateIP == "" {
		in.PrivateIP = fmt.Sprintf("10.0.%d.%d", n/250, n%250+4)
	}
	if in.State == Running && in.PublicIP == "" {
		in.PublicIP = s.publicIPLocked()
	}
	if in.LaunchTime.IsZero() {
		in.LaunchTime = s.opts.Now().UTC().Truncate(time.Second)
	}
	inst := &instance{Instance: in, since: s.opts.Now()}
	if _, ok := s.instances[in.ID]; !ok {
		s.order = append(s.order, in.ID)
	}
	s.instances[in.ID] = inst
	return inst
}

func (s *Server) publicIPLocked() string {
	s.seq++
	return fmt.Sprintf("203.0.113.%d", s.seq%250+1)
}

// Instance returns a copy of instance id as it is now (without advancing
// its state).
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	out := in.Instance
	out.Tags = cloneTags(in.Tags)
	return out, true
}

// SetState puts instance id in state (as if something outside Kloud
// changed it); it reports whether the instance exists.
func (s *Server) SetState(id, state string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if ok {
		s.enterLocked(in, state)
	}
	return ok
}

// Forget removes instance id, as EC2 does some time after termination:
// asking for it is then InvalidInstanceID.NotFound.
func (s *Server) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.instances, id)
	s.order = slices.DeleteFunc(s.order, func(x string) bool { return x == id })
}

func (s *Server) enterLocked(in *instance, state string) {
	in.State, in.polls, in.since = state, 0, s.opts.Now()
	switch state {
	case Running:
		if in.PublicIP == "" {
			in.PublicIP = s.publicIPLocked()
		}
	case Stopped, Terminated:
		in.PublicIP = ""
	}
	if state == Terminated {
		in.PrivateIP = ""
	}
}

// advanceLocked is one DescribeInstances call seeing in: a transitional
// state ends after TransitionPolls of them or TransitionAfter of clock.
func (s *Server) advanceLocked(in *instance) {
	final, ok := next[in.State]
	if !ok {
		return
	}
	byPolls := s.opts.TransitionPolls > 0 && in.polls >= s.opts.TransitionPolls
	byClock := s.opts.TransitionAfter > 0 && s.opts.Now().Sub(in.since) >= s.opts.TransitionAfter
	if byPolls || byClock {
		s.enterLocked(in, final)
		return
	}
	in.polls++
}

func cloneTags(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// The EC2 XML documents.

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xmlPlacement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	Tenancy          string `xml:"tenancy"`
}

type xmlInstance struct {
	InstanceID     string       `xml:"instanceId"`
	ImageID        string       `xml:"imageId"`
	State          xmlState     `xml:"instanceState"`
	PrivateDNSName string       `xml:"privateDnsName"`
	DNSName        string       `xml:"dnsName"`
	KeyName        string       `xml:"keyName,omitempty"`
	AmiLaunchIndex int          `xml:"amiLaunchIndex"`
	InstanceType   string       `xml:"instanceType"`
	LaunchTime     string       `xml:"launchTime"`
	Placement      xmlPlacement `xml:"placement"`
	SubnetID       string       `xml:"subnetId,omitempty"`
	VpcID          string       `xml:"vpcId,omitempty"`
	PrivateIP      string       `xml:"privateIpAddress,omitempty"`
	PublicIP       string       `xml:"ipAddress,omitempty"`
	Architecture   string       `xml:"architecture"`
	RootDeviceType string       `xml:"rootDeviceType"`
	Tags           *xmlTagSet   `xml:"tagSet,omitempty"`
}

type xmlTagSet struct {
	Items []xmlTag `xml:"item"`
}

type xmlInstancesSet struct {
	Items []xmlInstance `xml:"item"`
}

type xmlReservation struct {
	ReservationID string          `xml:"reservationId"`
	OwnerID       string          `xml:"ownerId"`
	GroupSet      struct{}        `xml:"groupSet"`
	Instances     xmlInstancesSet `xml:"instancesSet"`
}

type describeInstancesResponse struct {
	XMLName      xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
	RequestID    string   `xml:"requestId"`
	Reservations struct {
		Items []xmlReservation `xml:"item"`
	} `xml:"reservationSet"`
}

type runInstancesResponse struct {
	XMLName       xml.Name        `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ RunInstancesResponse"`
	RequestID     string          `xml:"requestId"`
	ReservationID string          `xml:"reservationId"`
	OwnerID       string          `xml:"ownerId"`
	GroupSet      struct{}        `xml:"groupSet"`
	Instances     xmlInstancesSet `xml:"instancesSet"`
}

type xmlStateChange struct {
	InstanceID    string   `xml:"instanceId"`
	CurrentState  xmlState `xml:"currentState"`
	PreviousState xmlState `xml:"previousState"`
}

type stateChangeResponse struct {
	XMLName   xml.Name
	RequestID string `xml:"requestId"`
	Instances struct {
		Items []xmlStateChange `xml:"item"`
	} `xml:"instancesSet"`
}

func (s *Server) xmlInstanceLocked(in *instance) xmlInstance {
	x := xmlInstance{
		InstanceID:     in.ID,
		ImageID:        in.ImageID,
		State:          xmlState{Code: stateCodes[in.State], Name: in.State},
		KeyName:        in.KeyName,
		InstanceType:   in.InstanceType,
		LaunchTime:     in.LaunchTime.UTC().Format("2006-01-02T15:04:05.000Z"),
		Placement:      xmlPlacement{AvailabilityZone: in.AvailabilityZone, Tenancy: "default"},
		PrivateIP:      in.PrivateIP,
		PublicIP:       in.PublicIP,
		Architecture:   "x86_64",
		RootDeviceType: "ebs",
	}
	if in.State != Terminated {
		x.SubnetID, x.VpcID = in.SubnetID, in.VpcID
	}
	if in.PrivateIP != "" {
		x.PrivateDNSName = "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".ec2.internal"
	}
	if in.PublicIP != "" {
		x.DNSName = "ec2-" + strings.ReplaceAll(in.PublicIP, ".", "-") + ".compute-1.amazonaws.com"
	}
	if len(in.Tags) > 0 {
		x.Tags = &xmlTagSet{}
		for _, k := range sortedKeys(in.Tags) {
			x.Tags.Items = append(x.Tags.Items, xmlTag{Key: k, Value: in.Tags[k]})
		}
	}
	return x
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ec2 serves one EC2 Query request.
func (s *Server) ec2(form url.Values, reqID string) (any, *apiError) {
	action := form.Get("Action")
	if action == "" {
		return nil, errorf(http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action")
	}
	switch v := form.Get("Version"); v {
	case EC2Version:
	case "":
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter Version")
	default:
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "the simulator speaks EC2 version %s, not %q", EC2Version, v)
	}
	handlers := map[string]func(url.Values, string) (any, *apiError){
		"DescribeInstances":  s.describeInstances,
		"RunInstances":       s.runInstances,
		"StartInstances":     s.startInstances,
		"StopInstances":      s.stopInstances,
		"TerminateInstances": s.terminateInstances,
	}
	h, ok := handlers[action]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service.", action)
	}
	if form.Get("DryRun") == "true" {
		return nil, errorf(http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	return h(form, reqID)
}

// list returns the values of a Query list parameter (name.1, name.2, ...).
func list(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[name+"."+strconv.Itoa(i)]
		if !ok || len(v) == 0 {
			return out
		}
		out = append(out, v[0])
	}
}

// lookupLocked returns the instances ids name, or the error EC2 answers
// for a malformed or unknown id.
func (s *Server) lookupLocked(ids []string) ([]*instance, *apiError) {
	var missing []string
	out := make([]*instance, 0, len(ids))
	for _, id := range ids {
		if !instanceIDRe.MatchString(id) {
			return nil, errorf(http.StatusBadRequest, "InvalidInstanceID.Malformed", "Invalid id: %q (expecting \"i-...\")", id)
		}
		in, ok := s.instances[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		out = append(out, in)
	}
	switch len(missing) {
	case 0:
		return out, nil
	case 1:
		return nil, errorf(http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", missing[0])
	}
	return nil, errorf(http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
}

// filter is one Filter.N of DescribeInstances.
type filter struct {
	name   string
	values []string
}

func filters(form url.Values) ([]filter, *apiError) {
	var out []filter
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		name := form.Get(p + ".Name")
		if name == "" {
			return out, nil
		}
		switch {
		case name == "instance-state-name", name == "instance-type", name == "availability-zone", strings.HasPrefix(name, "tag:"):
		default:
			return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "The filter '%s' is invalid (the simulator knows instance-state-name, instance-type, availability-zone and tag:<key>)", name)
		}
		out = append(out, filter{name: name, values: list(form, p+".Value")})
	}
}

func (f filter) match(in *instance) bool {
	var v string
	switch {
	case f.name == "instance-state-name":
		v = in.State
	case f.name == "instance-type":
		v = in.InstanceType
	case f.name == "availability-zone":
		v = in.AvailabilityZone
	default:
		tv, ok := in.Tags[strings.TrimPrefix(f.name, "tag:")]
		if !ok {
			return false
		}
		v = tv
	}
	return slices.Contains(f.values, v)
}

func (s *Server) describeInstances(form url.Values, reqID string) (any, *apiError) {
	fs, aerr := filters(form)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var insts []*instance
	if ids := list(form, "InstanceId"); len(ids) > 0 {
		if insts, aerr = s.lookupLocked(ids); aerr != nil {
			return nil, aerr
		}
	} else {
		for _, id := range s.order {
			insts = append(insts, s.instances[id])
		}
	}
	resp := describeInstancesResponse{RequestID: reqID}
next:
	for _, in := range insts {
		s.advanceLocked(in)
		for _, f := range fs {
			if !f.match(in) {
				continue next
			}
		}
		resp.Reservations.Items = append(resp.Reservations.Items, xmlReservation{
			ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"),
			OwnerID:       DefaultAccount,
			Instances:     xmlInstancesSet{Items: []xmlInstance{s.xmlInstanceLocked(in)}},
		})
	}
	return resp, nil
}

func (s *Server) runInstances(form url.Values, reqID string) (any, *apiError) {
	image := form.Get("ImageId")
	if image == "" {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ImageId")
	}
	minCount, err1 := strconv.Atoi(form.Get("MinCount"))
	maxCount, err2 := strconv.Atoi(form.Get("MaxCount"))
	if err1 != nil || err2 != nil || minCount < 1 || maxCount < minCount || maxCount > 100 {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterValue", "MinCount and MaxCount must be integers with 1 <= MinCount <= MaxCount <= 100")
	}
	tags := map[string]string{}
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt := form.Get(p + ".ResourceType")
		if rt == "" {
			break
		}
		if rt != "instance" {
			continue
		}
		for j := 1; ; j++ {
			tp := p + ".Tag." + strconv.Itoa(j)
			k := form.Get(tp + ".Key")
			if k == "" {
				break
			}
			tags[k] = form.Get(tp + ".Value")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	resp := runInstancesResponse{RequestID: reqID, ReservationID: fmt.Sprintf("r-%017x", s.seq), OwnerID: DefaultAccount}
	for range maxCount {
		in := s.addLocked(Instance{
			ImageID:          image,
			InstanceType:     form.Get("InstanceType"),
			State:            Pending,
			AvailabilityZone: form.Get("Placement.AvailabilityZone"),
			SubnetID:         form.Get("SubnetId"),
			KeyName:          form.Get("KeyName"),
			Tags:             cloneTags(tags),
		})
		resp.Instances.Items = append(resp.Instances.Items, s.xmlInstanceLocked(in))
	}
	return resp, nil
}

// stateChange runs a start, stop or terminate over the request's
// instances: from answers the state an instance moves out of (or an
// error), and the answer lists each one's previous and current state.
func (s *Server) stateChange(form url.Values, reqID, response string, change func(*instance) (string, *apiError)) (any, *apiError) {
	ids := list(form, "InstanceId")
	if len(ids) == 0 {
		return nil, errorf(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	insts, aerr := s.lookupLocked(ids)
	if aerr != nil {
		return nil, aerr
	}
	targets := make([]string, len(insts))
	for i, in := range insts { // all or nothing, as EC2
		if targets[i], aerr = change(in); aerr != nil {
			return nil, aerr
		}
	}
	resp := stateChangeResponse{XMLName: xml.Name{Space: EC2Namespace, Local: response}, RequestID: reqID}
	for i, in := range insts {
		prev := xmlState{Code: stateCodes[in.State], Name: in.State}
		if targets[i] != in.State {
			s.enterLocked(in, targets[i])
		}
		resp.Instances.Items = append(resp.Instances.Items, xmlStateChange{
			InstanceID: in.ID, PreviousState: prev,
			CurrentState: xmlState{Code: stateCodes[in.State], Name: in.State},
		})
	}
	return resp, nil
}

func incorrectState(in *instance, what string) *apiError {
	return errorf(http.StatusBadRequest, "IncorrectInstanceState", "The instance '%s' is not in a state from which it can be %s.", in.ID, what)
}

func (s *Server) startInstances(form url.Values, reqID string) (any, *apiError) {
	return s.stateChange(form, reqID, "StartInstancesResponse", func(in *instance) (string, *apiError) {
		switch in.State {
		case Stopped:
			return Pending, nil
		case Pending, Running:
			return in.State, nil
		}
		return "", incorrectState(in, "started")
	})
}

func (s *Server) stopInstances(form url.Values, reqID string) (any, *apiError) {
	return s.stateChange(form, reqID, "StopInstancesResponse", func(in *instance) (string, *apiError) {
		switch in.State {
		case Running:
			return Stopping, nil
		case Stopping, Stopped:
			return in.State, nil
		}
		return "", incorrectState(in, "stopped")
	})
}

func (s *Server) terminateInstances(form url.Values, reqID string) (any, *apiError) {
	return s.stateChange(form, reqID, "TerminateInstancesResponse", func(in *instance) (string, *apiError) {
		switch in.State {
		case ShuttingDown, Terminated:
			return in.State, nil
		}
		return ShuttingDown, nil
	})
}
