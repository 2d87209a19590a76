package polycom

import "fmt"

// Channel numbers (EA 70568 and the Poly UC admin guides). One byte on the
// wire carries 1–50: channels 1–25 are push-to-talk, 26–50 group paging, and
// the phone's "paging group N" is channel 25+N. The priority and emergency
// numbers are the phones' factory defaults (ptt.pageMode.priorityGroup and
// emergencyGroup, ptt.priorityChannel and emergencyChannel); an
// administrator can move them.
const (
	PTTPriorityChannel  = 24 // PTT priority: interrupts other PTT traffic
	PTTEmergencyChannel = 25 // PTT emergency
	FirstPagingChannel  = 26 // paging group 1, the phones' default subscription
	// PagingPriorityChannel is paging group 24: interrupts normal pages and
	// active calls; DND blocks it.
	PagingPriorityChannel = 49
	// PagingEmergencyChannel is paging group 25: interrupts everything and
	// plays at near-maximum volume, even through DND.
	PagingEmergencyChannel = 50
)

// Paging groups as the phones number them.
const (
	MinPagingGroup       = 1
	MaxPagingGroup       = 25
	PriorityPagingGroup  = 24
	EmergencyPagingGroup = 25
)

// PagingChannel returns the wire channel of phone paging group n (1–25):
// 25+n, so group 1 is channel 26 and the emergency group 25 is channel 50.
func PagingChannel(group int) (int, error) {
	if group < MinPagingGroup || group > MaxPagingGroup {
		return 0, fmt.Errorf("paging group %d: must be %d-%d", group, MinPagingGroup, MaxPagingGroup)
	}
	return group + FirstPagingChannel - 1, nil
}
