#pragma once
#define DAC_CORE_VERSION "0.1.0"
