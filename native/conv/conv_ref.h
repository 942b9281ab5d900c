// The reference dense convolution: the definition as plain loops,
// accumulated in double. Expects arguments already checked by conv2d_forward*.
#pragma once
#include "conv.h"

namespace dac {

void conv2d_reference(const Conv2DParams& p);

}  // namespace dac
