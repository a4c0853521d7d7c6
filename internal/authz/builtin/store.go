package builtin

import (
	"fmt"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// toStored converts a validated rule to the store's form.
func toStored(r authz.Rule) controldb.ACLRule {
	out := controldb.ACLRule{
		Permission: controldb.PermissionAllow,
		Topics:     r.Topics,
		QoS:        r.QoS,
		Retain:     r.Retain,
	}
	if r.Permission == authz.PermDeny {
		out.Permission = controldb.PermissionDeny
	}
	switch r.Action {
	case authz.ActPublish:
		out.Action = controldb.ActionPublish
	case authz.ActSubscribe:
		out.Action = controldb.ActionSubscribe
	default:
		out.Action = controldb.ActionAll
	}
	if len(out.QoS) == 0 {
		out.QoS = nil // empty and absent both mean any QoS
	}
	return out
}

// fromStored converts a stored rule back; the store has checked the names, this checks
// them again rather than guess.
func fromStored(r controldb.ACLRule) (authz.Rule, error) {
	out := authz.Rule{Topics: r.Topics, QoS: r.QoS, Retain: r.Retain}
	switch r.Permission {
	case controldb.PermissionAllow:
		out.Permission = authz.PermAllow
	case controldb.PermissionDeny:
		out.Permission = authz.PermDeny
	default:
		return out, fmt.Errorf("permission %q", r.Permission)
	}
	switch r.Action {
	case controldb.ActionPublish:
		out.Action = authz.ActPublish
	case controldb.ActionSubscribe:
		out.Action = authz.ActSubscribe
	case controldb.ActionAll:
		out.Action = authz.ActAll
	default:
		return out, fmt.Errorf("action %q", r.Action)
	}
	return out, nil
}
