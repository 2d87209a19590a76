package console

import "testing"

// The preview marks what an UNCONFIRMED comment is about, and only that.
func TestMarkUnconfirmed(t *testing.T) {
	body := `#!version:1.0.0.1
## Keys marked UNCONFIRMED are inferred
account.2.enable = 1
## UNCONFIRMED: 2 = blind
transfer.dsskey_deal_type = 2
linekey.6.type = 10
## UNCONFIRMED: the value is the bare slot
expansion_module.1.key.1.type = 16
expansion_module.1.key.1.value = 701

<!-- Parameters after an UNCONFIRMED comment are inferred -->
  <reg
    reg.2.address="2001"
  />
  <!-- UNCONFIRMED: inferred -->
  <ptt_mode
    ptt.pageMode.codec="G.711Mu"
  />
  <attendant
    attendant.reg="2"
  />`
	var unsure []string
	for _, l := range markUnconfirmed(body) {
		if l.Unsure && !l.Comment {
			unsure = append(unsure, l.Text)
		}
	}
	want := []string{"transfer.dsskey_deal_type = 2", "expansion_module.1.key.1.value = 701", "  <ptt_mode", `    ptt.pageMode.codec="G.711Mu"`, "  />"}
	if len(unsure) != len(want) {
		t.Fatalf("unsure lines %q, want %q", unsure, want)
	}
	for i := range want {
		if unsure[i] != want[i] {
			t.Fatalf("unsure lines %q, want %q", unsure, want)
		}
	}
}
