#! 	/bin/bash -e 	
