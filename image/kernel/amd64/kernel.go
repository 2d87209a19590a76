// Package kernel is parkpage's amd64 appliance kernel as a gokrazy kernel
// package (gok copies vmlinuz and cmdline.txt from this directory): Linux
// 6.1 from Debian's linux-source-6.1 with config.parkpage, which adds line
// out (HDA, AC'97, USB audio) and GPIO (character device, gpio-sim,
// configfs) to what gokrazy's kernel.amd64 provides for the appliance.
// build-kernel (`make kernel`) rebuilds vmlinuz; SHA256SUMS records it.
package kernel
