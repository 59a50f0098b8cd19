package slicer

import "k8s.io/utils/clock"

type realClock = clock.RealClock
