package transcode

// PeakProcesses is the most ffmpeg/ffprobe processes t had alive at once.
func (t *Transcoder) PeakProcesses() int64 { return t.peak.Load() }

// RunningProcesses is how many ffmpeg/ffprobe processes t has alive now.
func (t *Transcoder) RunningProcesses() int64 { return t.running.Load() }
