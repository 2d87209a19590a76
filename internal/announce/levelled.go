package announce

// Level scales pcm to targetDBFS active loudness (see Loudness) and limits
// its peaks to ceilingDBFS, the way rendered phrases are levelled; zero
// values take DefaultTargetDBFS and DefaultCeilingDBFS. Recordings made on
// a phone go through it so they sit at the same level as the prompts
// around them.
func Level(pcm []int16, targetDBFS, ceilingDBFS float64) []int16 {
	if targetDBFS == 0 {
		targetDBFS = DefaultTargetDBFS
	}
	if ceilingDBFS == 0 {
		ceilingDBFS = DefaultCeilingDBFS
	}
	return limit(normalize(pcm, targetDBFS), ceilingDBFS)
}
