'use strict'
require('./conformance').conformance('azure')
