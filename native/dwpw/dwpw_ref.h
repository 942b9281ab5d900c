// The reference fused kernel: the definition in dwpw.h as plain loops,
// accumulated in double. Expects arguments already checked by dwpw_forward*.
#pragma once
#include "dwpw.h"

namespace dac {

void dwpw_reference(const DwPwParams& p);

}  // namespace dac
