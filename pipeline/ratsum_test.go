package pipeline_test

import "math/big"

type bigRat = big.Rat

func (s *ratSum) add(v string) *ratSum {
	r, ok := new(big.Rat).SetString(v)
	if !ok {
		r = new(big.Rat).SetInt64(1 << 40) // poisons the sum visibly
	}
	s.r.Add(&s.r, r)
	return s
}

func (s *ratSum) String() string { return s.r.RatString() }
