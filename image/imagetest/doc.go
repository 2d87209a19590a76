// Package imagetest boots the parkpage appliance images in QEMU (TCG, no
// KVM) and proves them on a real kernel: /healthz through a forwarded
// port, a SIP call parked and picked up with sipp over the forwarded SIP
// port. `make image-test` builds the test images and runs it.
package imagetest
